package torchrng

import "math"

// This file reproduces ATen's normal_fill_16_AVX2 lane by lane in float32:
// avx_mathfun.h's log256_ps and sincos256_ps (Cephes-derived polynomials by
// J. Pommier and G. Garberoglio), written here from the algorithm.
//
// Every multiply and add rounds to float32 as one AVX instruction does, except
// where a multiply feeds an add directly: GCC (-mfma, -ffp-contract=fast, the
// GNU-mode default) contracts those pairs of intrinsics into one fused
// multiply-add, and torch's shipped AVX2 kernel therefore rounds once there.
// fma32 marks each such place. The fixture settles it: with these contractions
// all 65536-value draws match bit for bit; with every operation rounded
// separately 23 of the fixture's draws differ. Explicit float32 conversions stop the Go compiler from fusing
// anything else on architectures where it would.

// Cephes float constants, as avx_mathfun spells them.
const (
	cephesSQRTHF = float32(0.707106781186547524)
	logP0        = float32(7.0376836292e-2)
	logP1        = float32(-1.1514610310e-1)
	logP2        = float32(1.1676998740e-1)
	logP3        = float32(-1.2420140846e-1)
	logP4        = float32(+1.4249322787e-1)
	logP5        = float32(-1.6668057665e-1)
	logP6        = float32(+2.0000714765e-1)
	logP7        = float32(-2.4999993993e-1)
	logP8        = float32(+3.3333331174e-1)
	logQ1        = float32(-2.12194440e-4)
	logQ2        = float32(0.693359375)

	minusDP1   = float32(-0.78515625)
	minusDP2   = float32(-2.4187564849853515625e-4)
	minusDP3   = float32(-3.77489497744594108e-8)
	sincofP0   = float32(-1.9515295891e-4)
	sincofP1   = float32(8.3321608736e-3)
	sincofP2   = float32(-1.6666654611e-1)
	coscofP0   = float32(2.443315711809948e-005)
	coscofP1   = float32(-1.388731625493765e-003)
	coscofP2   = float32(4.166664568298827e-002)
	cephesFOPI = float32(1.27323954473516) // 4/π
)

// twoPi32 is _mm256_set1_ps(2.0f * c10::pi<double>).
var twoPi32 = float32(2 * math.Pi)

// normal16AVX2 transforms 16 uniforms in place as normal_fill_16_AVX2 does:
// u1 = 1 - d[0:8], u2 = d[8:16], radius = sqrt(-2·log(u1)), theta = 2π·u2,
// d[0:8] = radius·cos(theta), d[8:16] = radius·sin(theta).
func normal16AVX2(d *[16]float32) {
	for j := range 8 {
		u1 := 1 - d[j]
		u2 := d[j+8]
		radius := float32(math.Sqrt(float64(float32(-2 * log32(u1)))))
		theta := float32(twoPi32 * u2)
		s, c := sincos32(theta)
		// _mm256_fmadd_ps(n, std=1, mean=0): exact except that -0 becomes +0.
		d[j] = plusZero(float32(radius * c))
		d[j+8] = plusZero(float32(radius * s))
	}
}

func plusZero(x float32) float32 {
	if x == 0 {
		return 0
	}
	return x
}

// log32 is one lane of log256_ps for a positive normal float.
func log32(x float32) float32 {
	b := math.Float32bits(x)
	e := float32(int32(b>>23)-0x7f) + 1
	x = math.Float32frombits(b&^0x7f800000 | 0x3f000000) // mantissa in [0.5, 1)
	if x < cephesSQRTHF {
		e--
		x = float32(x-1) + x
	} else {
		x = x - 1
	}
	z := float32(x * x)
	y := logP0
	y = fma32(y, x, logP1)
	y = fma32(y, x, logP2)
	y = fma32(y, x, logP3)
	y = fma32(y, x, logP4)
	y = fma32(y, x, logP5)
	y = fma32(y, x, logP6)
	y = fma32(y, x, logP7)
	y = fma32(y, x, logP8)
	y = float32(y * x)
	y = fma32(y, z, float32(e*logQ1))
	y = y - z*0.5              // z·0.5 is exact: fused or not, one rounding
	x = float32(x+y) + e*logQ2 // e·q2 is exact (q2 has 9 significant bits)
	return x
}

// sincos32 is one lane of sincos256_ps for x ≥ 0 (theta here is in [0, 2π)).
func sincos32(x float32) (sin, cos float32) {
	y := float32(x * cephesFOPI)
	j := (int32(y) + 1) &^ 1
	y = float32(j)
	signSin := uint32(j&4) << 29
	polySin := j&2 == 0 // first polynomial is the cosine one unless set
	signCos := uint32(^(j-2)&4) << 29

	// Extended-precision reduction x - y·π/4 in three parts.
	x = fma32(y, minusDP1, x)
	x = fma32(y, minusDP2, x)
	x = fma32(y, minusDP3, x)

	z := float32(x * x)
	c := coscofP0
	c = fma32(c, z, coscofP1)
	c = fma32(c, z, coscofP2)
	c = float32(c * z)
	c = fma32(c, z, -float32(z*0.5))
	c = c + 1

	s := sincofP0
	s = fma32(s, z, sincofP1)
	s = fma32(s, z, sincofP2)
	s = float32(s * z)
	s = fma32(s, x, x)

	var ysin1, ysin2 float32
	if polySin {
		ysin2 = s
	} else {
		ysin1 = c
	}
	s2 := s - ysin2
	c2 := c - ysin1
	sinV := ysin1 + ysin2
	cosV := c2 + s2
	sin = math.Float32frombits(math.Float32bits(sinV) ^ signSin)
	cos = math.Float32frombits(math.Float32bits(cosV) ^ signCos)
	return sin, cos
}

// fma32 returns a·b + c rounded once to float32, as vfmadd…ps does.
//
// a·b is exact in float64, so s = a·b + c in float64 is rounded once; rounding
// s again to float32 can differ from rounding the exact sum only when s lands
// exactly on a midpoint between two float32 values. Only then is the rounding
// error of s needed (TwoSum): it says on which side of the midpoint the exact
// sum lies, and s is moved one float64 ulp that way before the final rounding.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	s := p + float64(c)
	if math.Float64bits(s)&(1<<midBits-1) == 1<<(midBits-1) {
		return fma32Tie(p, float64(c), s)
	}
	return float32(s)
}

// midBits is how many float64 mantissa bits lie below float32's.
const midBits = 52 - 23

// fma32Tie rounds p + c to float32 when s, their float64 sum, is a float32
// midpoint.
//
//go:noinline
func fma32Tie(p, c, s float64) float32 {
	bits := math.Float64bits(s)
	bv := s - p
	err := (p - (s - bv)) + (c - bv)
	switch {
	case err == 0:
	case (err > 0) == (s > 0):
		s = math.Float64frombits(bits + 1)
	default:
		s = math.Float64frombits(bits - 1)
	}
	return float32(s)
}
