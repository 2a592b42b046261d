package tinymodel

import (
	"math"
	"strings"

	"github.com/diffute/diffute/safetensors"
	"github.com/diffute/diffute/sdgraph"
)

// RandomWeights returns the tensors of a random-weight checkpoint for params,
// seeded by seed and each weight's name, so the same call always gives the same
// bytes. Linear and conv weights are uniform with the variance 1/fan_in (the
// scale PyTorch's default initialisation keeps activations in range with);
// norm scales are near 1, biases and embeddings small. dtype is F32 or F16.
func RandomWeights(params []sdgraph.Param, seed uint64, dtype safetensors.DType) []safetensors.WriteTensor {
	out := make([]safetensors.WriteTensor, len(params))
	for i, p := range params {
		out[i] = safetensors.WriteTensor{Name: p.Name, DType: dtype, Shape: p.Shape, Fill: parallelFill(p, seed, dtype)}
	}
	return out
}

// initOf gives the centre and half-width of a weight's uniform distribution.
func initOf(p sdgraph.Param) (center, halfWidth float64) {
	name := p.Name
	norm := strings.Contains(name, "norm") || strings.Contains(name, "ln_")
	switch {
	case len(p.Shape) == 1 && norm && strings.HasSuffix(name, ".weight"):
		return 1, 0.1
	case len(p.Shape) == 1:
		return 0, 0.02
	case strings.Contains(name, "embedding.weight"):
		return 0, 0.02 * math.Sqrt(3)
	}
	fanIn := int64(1)
	for _, d := range p.Shape[1:] {
		fanIn *= d
	}
	return 0, math.Sqrt(3 / float64(fanIn))
}
