// Package checkpoint owns where a Stable Diffusion model's weights and configs
// come from, and hands them out under the names diffusers and transformers give
// them, whatever the file on disk calls them.
//
// Two sources:
//
//   - A diffusers component folder (unet/, vae/, text_encoder/, text_encoder_2/):
//     OpenComponent reads its config.json and picks one weights variant
//     (diffusion_pytorch_model[.fp16].safetensors, model[.fp16].safetensors, or
//     their sharded *.safetensors.index.json), preferring fp16 when present.
//   - An original single-file checkpoint in the "ldm" key layout written by
//     CompVis/Stability training code and used by AUTOMATIC1111 and ComfyUI:
//     OpenSingleFile tells SD 1.x, SD 2.x and SDXL base apart by their keys and
//     maps every tensor to its diffusers name (see ldm.go for the rules). The
//     layer counts come from the keys present, never from a fixed table, so
//     the tiny test checkpoints map as the full-size ones do. What a single file
//     lacks (model_index.json, scheduler, tokenizers, component configs) is the
//     published base layout of its family, embedded in the binary: BaseLayout.
//
// OpenPipeline is the one entry point over both: a folder or a .safetensors
// file in, the layout files (an fs.FS with the diffusers paths) and every
// component's weights out. A folder without safetensors weights (an ONNX
// export) is ErrNoSafetensors, for a loader that reads that layout itself.
//
// Weight data are views of the memory-mapped safetensors files wherever the
// bytes need not move (a q/k/v slice of an OpenCLIP in_proj, a 1x1 conv kernel
// read as a linear weight); only a transposed text_projection gets a fresh,
// small buffer. Views are valid until the Component or SingleFile is closed.
//
// Every failure is one line naming the file and, where there is one, the tensor
// or key: a truncated or corrupt file (reported by package safetensors), a
// missing folder or config.json, a key set of no known family, a tensor that is
// not F32, F16 or BF16.
package checkpoint
