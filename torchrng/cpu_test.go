package torchrng

import (
	"math"
	"testing"
)

// mt19937 reference: the 10000th output of std::mt19937 default-seeded with
// 5489 is 4123659995 (C++11 [rand.predef]).
func TestMT19937Predef(t *testing.T) {
	t.Parallel()
	var m mt19937
	m.seed(5489)
	var v uint32
	for range 10000 {
		v = m.uint32()
	}
	if v != 4123659995 {
		t.Fatalf("10000th output = %d, want 4123659995", v)
	}
}

// torch seeds mt19937 with the seed's low 32 bits: s and s+2^32 draw alike.
func TestCPUSeedHighBitsIgnored(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, 17, 64} {
		a := make([]float32, n)
		b := make([]float32, n)
		NewCPU(42).Randn(a)
		NewCPU(42 + 1<<32).Randn(b)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("n=%d: [%d] differs between seed 42 and 42+2^32", n, i)
			}
		}
	}
}

// fma32 must round once. a·b + c = 1 + 2^-24 + 2^-70 exactly: just above the
// float32 midpoint between 1 and 1+2^-23, so the answer is 1+2^-23; a plain
// float64 sum drops the 2^-70, lands on the midpoint and rounds to even, 1.
func TestFMA32SingleRounding(t *testing.T) {
	t.Parallel()
	a := float32(1.0 / (1 << 12) * (1 + 1.0/(1<<23)))
	b := -float32(1.0 / (1 << 12) * (1 - 1.0/(1<<23)))
	c := float32(1 + 1.0/(1<<23))
	if naive := float32(float64(a)*float64(b) + float64(c)); naive != 1 {
		t.Fatalf("test premise: double-rounded sum = %.10g, want 1", naive)
	}
	if got, want := fma32(a, b, c), float32(1+1.0/(1<<23)); got != want {
		t.Errorf("fma32 = %.10g, want %.10g", got, want)
	}
}
