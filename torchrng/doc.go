// Package torchrng reproduces, in pure Go, the standard-normal draws that
// torch.randn makes, bit for bit, so that a seed gives the same starting noise
// (and so the same image) in Diffute as in diffusers, ComfyUI or AUTOMATIC1111.
//
// Two generators are provided:
//
//   - CPU is torch.Generator("cpu").manual_seed(seed): ATen's mt19937, and
//     torch.randn's CPU kernels (torch 1.13, aten/src/ATen/native/cpu/
//     DistributionKernels.cpp and DistributionTemplates.h). A draw of 16 or more
//     float32 values first fills every element with a uniform float made from 24
//     random bits, then runs Box–Muller on each 16-value chunk, pairing element j
//     with j+8 (cosine into j, sine into j+8); when the count is not a multiple
//     of 16 the last 16 elements are redrawn and transformed again. Which
//     Box–Muller is used depends on the CPU: on x86-64 with AVX2 (the default
//     everywhere torch runs today) the AVX2 kernel with avx_mathfun's float
//     log/sincos approximations; under ATEN_CPU_CAPABILITY=default the scalar
//     kernel with the C library's logf/cosf/sinf. Kernel selects one; KernelAVX2
//     is the default. A draw of fewer than 16 values takes the double-precision
//     path (normal_distribution<double>, 53-bit uniforms from two 32-bit words),
//     which caches the second Box–Muller value in the generator for the next
//     small draw. Successive draws on one generator continue the stream, as they
//     do in torch.
//
//   - CUDA is what torch.randn gives on an NVIDIA GPU with
//     torch.Generator("cuda").manual_seed(seed), as AUTOMATIC1111's "NV" rng
//     source (modules/rng_philox.py) reproduces it on the CPU: Philox 4x32-10
//     keyed with the 64-bit seed, one counter per element, Box–Muller on the
//     first two words in double precision, and an offset that advances by one per
//     draw. It matches rng_philox.py bit for bit; the GPU values that
//     AUTOMATIC1111 documents differ from both by up to 3 float32 ulps (curand's
//     float Box–Muller), and whether real CUDA torch advances its offset the
//     same way between draws (ancestral step noise) is not verified here: no GPU
//     reference data exists in this environment.
//
// # Seeds
//
// torch.Generator.manual_seed takes any integer in [-2^63, 2^64); a negative
// seed is taken as its 64-bit two's complement. Both generators here take that
// 64-bit value as a uint64. The CPU generator seeds mt19937 with the low 32 bits
// only (at::mt19937's init_with_uint32), so seeds s and s + k·2^32 give the same
// noise on the CPU. The CUDA generator keys Philox with all 64 bits, so they
// differ there.
package torchrng
