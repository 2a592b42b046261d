// Package sdgraph builds the ONNX graphs Diffute runs for a Stable Diffusion
// checkpoint, from each component's config.json: the CLIP text encoders
// (CLIPTextModel and CLIPTextModelWithProjection), UNet2DConditionModel and the
// AutoencoderKL decoder. The Go reads like diffusers' and transformers' model
// code: one function per block type (resnetBlock, transformer2D,
// crossAttnDownBlock, …) composed from the config, and every weight is named by
// its key in the checkpoint ("down_blocks.0.attentions.0.proj_in.weight"), so the
// builder can be held next to the config and the safetensors index.
//
// A built graph holds no weights. Each weight is a supplied initializer (see
// onnxgraph.SuppliedInitializer) and the Graph lists it as a Param with the shape
// the checkpoint must have and the layout the graph wants (a Linear weight is
// used transposed, a norm's scale broadcast over height and width); the loader
// hands ONNX Runtime the checkpoint's own bytes, or one converted copy when the
// dtype or layout must change. The same Params are what a random-weight
// checkpoint of the architecture needs (models make-random, the tiny models).
//
// A config value the builder does not implement is an error naming the key and
// the value, never a graph that computes something else.
package sdgraph
