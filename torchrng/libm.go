package torchrng

import "math"

// This file reproduces the C library's logf, sinf and cosf as torch's scalar
// normal kernel calls them on Linux: glibc 2.28 and later (the ARM
// optimized-routines algorithms by Szabolcs Nagy and Wilco Dijkstra), which
// evaluate in double and round to float once, within 0.82 ulp (logf) and 0.56
// ulp (sinf/cosf), so not always to nearest. On x86-64 with FMA glibc picks
// its FMA builds of the same code (ifunc), in which every a + b·c is one fused
// operation; math.FMA reproduces those. Only the paths Box–Muller reaches are
// here: logf on (0, 1], sinf/cosf on [0, 2π).

// logf table: 16 subintervals of [OFF, 2·OFF) with 1/c and log(c).
var logfTab = [16]struct{ invc, logc float64 }{
	{0x1.661ec79f8f3bep+0, -0x1.57bf7808caadep-2},
	{0x1.571ed4aaf883dp+0, -0x1.2bef0a7c06ddbp-2},
	{0x1.49539f0f010bp+0, -0x1.01eae7f513a67p-2},
	{0x1.3c995b0b80385p+0, -0x1.b31d8a68224e9p-3},
	{0x1.30d190c8864a5p+0, -0x1.6574f0ac07758p-3},
	{0x1.25e227b0b8eap+0, -0x1.1aa2bc79c81p-3},
	{0x1.1bb4a4a1a343fp+0, -0x1.a4e76ce8c0e5ep-4},
	{0x1.12358f08ae5bap+0, -0x1.1973c5a611cccp-4},
	{0x1.0953f419900a7p+0, -0x1.252f438e10c1ep-5},
	{0x1p+0, 0x0p+0},
	{0x1.e608cfd9a47acp-1, 0x1.aa5aa5df25984p-5},
	{0x1.ca4b31f026aap-1, 0x1.c5e53aa362eb4p-4},
	{0x1.b2036576afce6p-1, 0x1.526e57720db08p-3},
	{0x1.9c2d163a1aa2dp-1, 0x1.bc2860d22477p-3},
	{0x1.886e6037841edp-1, 0x1.1058bc8a07ee1p-2},
	{0x1.767dcf5534862p-1, 0x1.4043057b6ee09p-2},
}

const (
	logfLn2 = 0x1.62e42fefa39efp-1
	logfA0  = -0x1.00ea348b88334p-2
	logfA1  = 0x1.5575b0be00b6ap-2
	logfA2  = -0x1.ffffef20a4123p-2
	logfOff = 0x3f330000
)

// glibcLogf is glibc's logf for a positive normal float.
func glibcLogf(x float32) float32 {
	ix := math.Float32bits(x)
	if ix == 0x3f800000 {
		return 0
	}
	tmp := ix - logfOff
	i := (tmp >> (23 - 4)) % 16
	k := int32(tmp) >> 23
	iz := ix - tmp&0xff800000
	t := logfTab[i]
	z := float64(math.Float32frombits(iz))
	r := math.FMA(z, t.invc, -1)
	y0 := math.FMA(float64(k), logfLn2, t.logc)
	r2 := r * r
	y := math.FMA(logfA1, r, logfA2)
	y = math.FMA(logfA0, r2, y)
	y = math.FMA(y, r2, y0+r)
	return float32(y)
}

// sincosf polynomial tables; the second computes -cos.
type sincosT struct {
	sign               [4]float64
	c0, c1, c2, c3, c4 float64
	s1, s2, s3         float64
}

var sincosfTable = [2]sincosT{
	{[4]float64{1, -1, -1, 1}, 0x1p0, -0x1.ffffffd0c621cp-2, 0x1.55553e1068f19p-5, -0x1.6c087e89a359dp-10, 0x1.99343027bf8c3p-16,
		-0x1.555545995a603p-3, 0x1.1107605230bc4p-7, -0x1.994eb3774cf24p-13},
	{[4]float64{1, -1, -1, 1}, -0x1p0, 0x1.ffffffd0c621cp-2, -0x1.55553e1068f19p-5, 0x1.6c087e89a359dp-10, -0x1.99343027bf8c3p-16,
		-0x1.555545995a603p-3, 0x1.1107605230bc4p-7, -0x1.994eb3774cf24p-13},
}

const (
	sincosfHpiInv = 0x1.45F306DC9C883p+23 // 2/π · 2^24 (no TOINT_INTRINSICS on x86-64)
	sincosfHpi    = 0x1.921FB54442D18p0
)

func abstop12(x float32) uint32 { return math.Float32bits(x) >> 20 & 0x7ff }

// sinfPoly is glibc's sinf_poly: the sine polynomial when n is even, else the
// cosine one.
func sinfPoly(x, x2 float64, p *sincosT, n int) float32 {
	if n&1 == 0 {
		x3 := x * x2
		s1 := math.FMA(x2, p.s3, p.s2)
		x7 := x3 * x2
		s := math.FMA(x3, p.s1, x)
		return float32(math.FMA(x7, s1, s))
	}
	x4 := x2 * x2
	c2 := math.FMA(x2, p.c4, p.c3)
	c1 := math.FMA(x2, p.c1, p.c0)
	x6 := x4 * x2
	c := math.FMA(x4, p.c2, c1)
	return float32(math.FMA(x6, c2, c))
}

// reduceFast is glibc's reduce_fast without TOINT_INTRINSICS.
func reduceFast(x float64) (float64, int) {
	r := x * sincosfHpiInv
	n := (int32(r) + 0x800000) >> 24
	return math.FMA(-float64(n), sincosfHpi, x), int(n)
}

var (
	pio4Top = abstop12(float32(0x1.921FB54442D18p-1))
	tinyTop = abstop12(0x1p-12)
)

// glibcSinf is glibc's sinf for 0 ≤ y < 120.
func glibcSinf(y float32) float32 {
	x := float64(y)
	p := &sincosfTable[0]
	if abstop12(y) < pio4Top {
		if abstop12(y) < tinyTop {
			return y
		}
		return sinfPoly(x, x*x, p, 0)
	}
	x, n := reduceFast(x)
	s := p.sign[n&3]
	if n&2 != 0 {
		p = &sincosfTable[1]
	}
	return sinfPoly(x*s, x*x, p, n)
}

// glibcCosf is glibc's cosf for 0 ≤ y < 120.
func glibcCosf(y float32) float32 {
	x := float64(y)
	p := &sincosfTable[0]
	if abstop12(y) < pio4Top {
		if abstop12(y) < tinyTop {
			return 1
		}
		return sinfPoly(x, x*x, p, 1)
	}
	x, n := reduceFast(x)
	s := p.sign[n&3]
	if n&2 != 0 {
		p = &sincosfTable[1]
	}
	return sinfPoly(x*s, x*x, p, n^1)
}
