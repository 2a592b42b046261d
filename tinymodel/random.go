package tinymodel

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"

	og "github.com/diffute/diffute/onnxgraph"
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
		out[i] = safetensors.WriteTensor{Name: p.Name, DType: dtype, Shape: p.Shape, Fill: fillRandom(p, seed, dtype)}
	}
	return out
}

func fillRandom(p sdgraph.Param, seed uint64, dtype safetensors.DType) func([]byte) error {
	return func(dst []byte) error {
		h := fnv.New64a()
		h.Write([]byte(p.Name))
		r := rand.New(rand.NewPCG(seed, h.Sum64()))
		center, scale := initOf(p)
		n := len(dst) / dtype.Size()
		for i := range n {
			v := float32(center + scale*(2*r.Float64()-1))
			if dtype == safetensors.F16 {
				binary.LittleEndian.PutUint16(dst[2*i:], og.Float16Bits(v))
			} else {
				binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
			}
		}
		return nil
	}
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
