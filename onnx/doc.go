// Package onnx owns Diffute's native Stable Diffusion pipeline over ONNX Runtime
// (github.com/yalue/onnxruntime_go): finding and initialising the runtime library,
// loading a model folder in the diffusers/Optimum ONNX layout into one session per
// component, encoding prompts (SD 1.x and SDXL), the denoising loop with
// classifier-free guidance, VAE decoding to images, and an Engine that caches loaded
// pipelines (LRU, reference counted) and implements diffute.Engine.
//
// What each model expects is read from the model itself at load time: input and
// output names, element types (int32/int64 ids, fp32/fp16 floats) and ranks (a rank-0
// or [1] timestep), because exports of the same architecture differ.
//
// Determinism: image i of a request starts from latents drawn from its own
// generator, math/rand/v2's PCG seeded with (Seed+i, NoiseStream), as standard
// normal values (NormFloat64) in the latents' row-major order; ancestral schedulers
// draw their per-step noise from the same generator, after the initial latents. The
// same model, seed and parameters therefore give identical pixels on the same machine
// whatever the batch size or the other images of the request.
//
// The ONNX Runtime environment is process-wide: New (or InitRuntime) initialises it
// once and it lives until the process exits.
package onnx
