package torchrng

import "math"

// Kernel selects which of ATen's CPU Box–Muller kernels a CPU generator
// reproduces for draws of 16 or more values.
type Kernel int

const (
	// KernelAVX2 is normal_fill_AVX2: avx_mathfun's log256_ps and sincos256_ps
	// in float32, as torch runs on any x86-64 CPU with AVX2.
	KernelAVX2 Kernel = iota
	// KernelScalar is normal_fill with std::log, std::cos and std::sin on
	// float, as torch runs under ATEN_CPU_CAPABILITY=default or without AVX2.
	KernelScalar
)

// String returns "avx2" or "scalar".
func (k Kernel) String() string {
	if k == KernelScalar {
		return "scalar"
	}
	return "avx2"
}

// CPU is torch.Generator("cpu") after manual_seed: an mt19937 stream plus the
// cached second value of the double-precision Box–Muller. It is not safe for
// concurrent use.
type CPU struct {
	mt         mt19937
	kernel     Kernel
	cached     float64
	haveCached bool
}

// NewCPU returns a generator in the state torch.Generator("cpu").manual_seed(seed)
// leaves it in, drawing with the AVX2 kernel. A negative Python seed is passed
// as its two's complement; only the low 32 bits are used.
func NewCPU(seed uint64) *CPU {
	return NewCPUKernel(seed, KernelAVX2)
}

// NewCPUKernel is NewCPU with an explicit kernel for draws of 16 or more values.
func NewCPUKernel(seed uint64, k Kernel) *CPU {
	g := &CPU{kernel: k}
	g.mt.seed(seed)
	return g
}

// Randn fills dst as torch.randn(shape, generator=g) fills a contiguous float32
// tensor of len(dst) elements, continuing the generator's stream.
func (g *CPU) Randn(dst []float32) {
	n := len(dst)
	if n < 16 {
		for i := range dst {
			dst[i] = float32(g.normalDouble())
		}
		return
	}
	g.fillUniform(dst)
	box := normal16AVX2
	if g.kernel == KernelScalar {
		box = normal16Scalar
	}
	for i := 0; i+16 <= n; i += 16 {
		box((*[16]float32)(dst[i : i+16]))
	}
	if n%16 != 0 {
		// ATen redraws the last 16 values and transforms them as one chunk.
		tail := dst[n-16:]
		g.fillUniform(tail)
		box((*[16]float32)(tail))
	}
}

// fillUniform is at::uniform_real_distribution<float>(0, 1) per element: the
// low 24 bits of one 32-bit word, divided by 2^24.
func (g *CPU) fillUniform(dst []float32) {
	for i := range dst {
		dst[i] = float32(g.mt.uint32()&(1<<24-1)) * (1.0 / (1 << 24))
	}
}

// normalDouble is at::normal_distribution<double>(0, 1): the cached value when
// there is one, else a new Box–Muller pair from two 53-bit uniforms, whose sine
// half is cached.
func (g *CPU) normalDouble() float64 {
	if g.haveCached {
		g.haveCached = false
		return g.cached
	}
	u1 := g.uniformDouble()
	u2 := g.uniformDouble()
	r := math.Sqrt(-2 * math.Log(1-u2))
	theta := 2 * math.Pi * u1
	g.cached, g.haveCached = r*math.Sin(theta), true
	return r * math.Cos(theta)
}

// uniformDouble is at::uniform_real_distribution<double>(0, 1): random64()
// (first word high, second low), low 53 bits, divided by 2^53.
func (g *CPU) uniformDouble() float64 {
	hi := uint64(g.mt.uint32())
	lo := uint64(g.mt.uint32())
	return float64((hi<<32|lo)&(1<<53-1)) * (1.0 / (1 << 53))
}

// normal16Scalar is ATen's normal_fill_16 on float: u1 = 1 - d[j], u2 = d[j+8],
// radius = sqrt(-2·logf(u1)), theta = (float)(2π·u2) computed in double,
// d[j] = radius·cosf(theta), d[j+8] = radius·sinf(theta).
//
// logf, cosf and sinf are glibc's (libm.go).
func normal16Scalar(d *[16]float32) {
	for j := range 8 {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := float32(math.Sqrt(float64(-2 * glibcLogf(u1))))
		theta := float32(2 * math.Pi * float64(u2))
		// radius·cos·std + mean with std 1 and mean 0: -0 becomes +0.
		d[j] = plusZero(float32(radius * glibcCosf(theta)))
		d[j+8] = plusZero(float32(radius * glibcSinf(theta)))
	}
}
