package onnx

import (
	"math"
	"testing"
)

func TestHalfConversion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		f float32
		h uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                  // largest half
		{65520, 0x7c00},                  // rounds up to +Inf
		{1e6, 0x7c00},                    // overflow
		{float32(math.Inf(-1)), 0xfc00},  // -Inf
		{6.103515625e-05, 0x0400},        // smallest normal
		{5.960464477539063e-08, 0x0001},  // smallest subnormal
		{2.9802322387695312e-08, 0x0000}, // half of it: ties to even → 0
		{1.0009765625, 0x3c01},           // 1 + 2^-10
		{1.00048828125, 0x3c00},          // 1 + 2^-11: tie, rounds to even (down)
		{1.00146484375, 0x3c02},          // 1 + 3·2^-11: tie, rounds to even (up)
	}
	for _, c := range cases {
		if got := float32ToHalf(c.f); got != c.h {
			t.Errorf("float32ToHalf(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	if h := float32ToHalf(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN → %#04x, not a half NaN", h)
	}
	// Every finite half survives half→float→half exactly.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		f := halfToFloat32(uint16(h))
		if back := float32ToHalf(f); back != uint16(h) {
			t.Fatalf("half %#04x → %g → %#04x", h, f, back)
		}
	}
	if f := halfToFloat32(0x7c00); !math.IsInf(float64(f), 1) {
		t.Errorf("0x7c00 → %g, want +Inf", f)
	}
}
