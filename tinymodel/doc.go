// Package tinymodel owns the tiny Stable Diffusion models Diffute generates for
// its tests and offline demo: diffute/tiny-sd (SD 1.5 layout), diffute/tiny-sdxl
// (SDXL base) and diffute/tiny-sdxl-turbo (SDXL Turbo).
//
// Each is a complete diffusers/Optimum ONNX model folder (model_index.json,
// scheduler/, tokenizer[_2]/, text_encoder[_2]/, unet/ with external weights,
// vae_decoder/, vae_encoder/) with the real component names, input and output
// names, element types and ranks, and dynamic batch and spatial dims, so the
// engine cannot tell one from a real export except by its size and its output:
// the weights are seeded pseudo-random numbers and the images are noise. The
// graphs are written with package onnxgraph; the tokenizer is a small byte-level
// BPE vocabulary learned here from an embedded text.
//
// Outputs depend on every input (each token and position, the timestep, the
// sample, text_embeds and time_ids), so tests can tell when an input is lost;
// a UNet call at 64x64 costs microseconds. The same name and options always
// give byte-identical files.
package tinymodel
