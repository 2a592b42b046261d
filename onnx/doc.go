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
// Determinism: image i of a request has its own noise generator seeded with
// Seed+i, as diffusers with a list of generators (package torchrng): with rng
// "torch" (the default) torch.Generator("cpu").manual_seed(Seed+i), with "cuda"
// the Philox generator torch uses on NVIDIA GPUs. Its initial latents are
// randn(1, C, H/8, W/8) from that generator times the scheduler's
// init_noise_sigma, bit for bit what diffusers' prepare_latents draws; ancestral
// schedulers draw each step's noise from the same generator afterwards, one
// randn(1, C, H/8, W/8) per step, in diffusers' order (the scheduler's step
// calls randn_tensor with the pipeline's generator). The same model, seed and
// parameters therefore give identical pixels whatever the batch size or the
// other images of the request, and the starting noise of diffusers, ComfyUI or
// AUTOMATIC1111 for that seed. Under "torch" only the low 32 bits of the seed
// count (torch seeds mt19937 with them); under "cuda" all 64 do.
//
// The ONNX Runtime environment is process-wide: New (or InitRuntime) initialises it
// once and it lives until the process exits.
package onnx
