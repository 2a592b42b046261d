package torchrng

import "testing"

// A 1×4×128×128 latent: the starting noise of a 1024×1024 SDXL image.
const latentNumel = 1 * 4 * 128 * 128

func BenchmarkRandnCPU(b *testing.B) {
	dst := make([]float32, latentNumel)
	for b.Loop() {
		NewCPU(42).Randn(dst)
	}
}

func BenchmarkRandnCPUScalar(b *testing.B) {
	dst := make([]float32, latentNumel)
	for b.Loop() {
		NewCPUKernel(42, KernelScalar).Randn(dst)
	}
}

func BenchmarkRandnCUDA(b *testing.B) {
	dst := make([]float32, latentNumel)
	for b.Loop() {
		NewCUDA(42).Randn(dst)
	}
}
