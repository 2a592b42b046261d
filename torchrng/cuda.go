package torchrng

import "math"

// CUDA reproduces torch.randn on an NVIDIA GPU after
// torch.Generator("cuda").manual_seed(seed), the way AUTOMATIC1111's "NV" rng
// source does on the CPU: element i of a draw is the first Box–Muller value of
// Philox4x32-10 at counter (offset, 0, i, 0) with key (seed low 32 bits, seed
// high 32 bits); each draw advances offset by one. The Box–Muller is computed
// in double from the two first Philox words and rounded to float32. It is not
// safe for concurrent use.
type CUDA struct {
	key    [2]uint32
	offset uint32
}

// NewCUDA returns a generator for seed. All 64 bits of the seed matter.
func NewCUDA(seed uint64) *CUDA {
	return &CUDA{key: [2]uint32{uint32(seed), uint32(seed >> 32)}}
}

// Randn fills dst with len(dst) standard-normal values (one draw).
func (g *CUDA) Randn(dst []float32) {
	for i := range dst {
		r := philox4x32x10([4]uint32{g.offset, 0, uint32(i), 0}, g.key)
		dst[i] = philoxBoxMuller(r[0], r[1])
	}
	g.offset++
}

var (
	// The float32 constants of rng_philox.py, used in double arithmetic there
	// (numpy promotes uint32 × float32 to float64).
	twoPow32Inv    = float64(float32(2.3283064e-10))
	twoPow32Inv2Pi = float64(float32(2.3283064e-10 * 6.2831855))
)

func philoxBoxMuller(x, y uint32) float32 {
	u := float64(float64(x)*twoPow32Inv) + twoPow32Inv/2
	v := float64(float64(y)*twoPow32Inv2Pi) + twoPow32Inv2Pi/2
	s := math.Sqrt(-2 * math.Log(u))
	return float32(s * math.Sin(v))
}

const (
	philoxM0 = 0xD2511F53
	philoxM1 = 0xCD9E8D57
	philoxW0 = 0x9E3779B9
	philoxW1 = 0xBB67AE85
)

// philox4x32x10 is the Philox4x32 bijection with 10 rounds (Salmon et al.,
// "Parallel random numbers: as easy as 1, 2, 3", SC 2011).
func philox4x32x10(c [4]uint32, k [2]uint32) [4]uint32 {
	for r := range 10 {
		if r > 0 {
			k[0] += philoxW0
			k[1] += philoxW1
		}
		p0 := uint64(c[0]) * philoxM0
		p1 := uint64(c[2]) * philoxM1
		c = [4]uint32{
			uint32(p1>>32) ^ c[1] ^ k[0],
			uint32(p1),
			uint32(p0>>32) ^ c[3] ^ k[1],
			uint32(p0),
		}
	}
	return c
}
