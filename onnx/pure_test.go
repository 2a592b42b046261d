package onnx

import (
	"math"
	"testing"

	"github.com/diffute/diffute/sdgraph"

	"github.com/diffute/diffute"
	ort "github.com/yalue/onnxruntime_go"
)

func TestToNRGBA(t *testing.T) {
	t.Parallel()
	// 2×1 image: pixel 0 = (-1, 0, 1), pixel 1 = (NaN, -5, 5).
	nan := float32(math.NaN())
	img := toNRGBA([]float32{-1, nan, 0, -5, 1, 5}, 2, 1)
	want := []uint8{0, 128, 255, 255, 0, 0, 255, 255}
	for i, v := range want {
		if img.Pix[i] != v {
			t.Fatalf("Pix = %v, want %v", img.Pix[:8], want)
		}
	}
}

func TestResolveShape(t *testing.T) {
	t.Parallel()
	got, err := resolveShape(ort.NewShape(-1, 4, -1, -1), ort.NewShape(2, -1, 8, 8))
	if err != nil || !got.Equals(ort.NewShape(2, 4, 8, 8)) {
		t.Errorf("got %v, %v", got, err)
	}
	if _, err := resolveShape(ort.NewShape(-1, 4), ort.NewShape(2, 3)); err == nil {
		t.Error("conflicting fixed dimension accepted")
	}
	if _, err := resolveShape(ort.NewShape(-1, -1), ort.NewShape(2, -1)); err == nil {
		t.Error("unresolvable dimension accepted")
	}
	if _, err := resolveShape(ort.NewShape(-1), ort.NewShape(2, 3)); err == nil {
		t.Error("rank mismatch accepted")
	}
}

func TestImagesPerCall(t *testing.T) {
	t.Parallel()
	p := &Pipeline{maxBatchBytes: DefaultMaxBatchBytes}
	if n := p.imagesPerCall(8, 8, true); n < 8 {
		t.Errorf("64×64 images per call = %d, want many", n)
	}
	big := p.imagesPerCall(128, 128, false)
	guided := p.imagesPerCall(128, 128, true)
	if big < 1 || guided < 1 || guided > big {
		t.Errorf("1024² per call: %d unguided, %d guided", big, guided)
	}
	p.maxBatchBytes = 1
	if n := p.imagesPerCall(64, 64, true); n != 1 {
		t.Errorf("tiny budget: %d images per call, want 1", n)
	}
	if n := p.imagesPerCall(8, 8, true); n != 1 {
		t.Errorf("tiny budget: %d images per call, want 1", n)
	}
	p.maxBatchBytes = 2 * p.unetBytesPerRow(8, 8) * 2
	if n := p.imagesPerCall(8, 8, true); n != 2 {
		t.Errorf("budget of two guided images: %d per call", n)
	}
	// A float16 UNet with fused attention (the default on CUDA) takes more
	// rows in the same budget, at most the 32 its GroupNorm kernel takes.
	p.maxBatchBytes = DefaultMaxBatchBytes
	plain := p.imagesPerCall(128, 128, true)
	p.built = &builtSource{halfUNet: true, graph: sdgraph.Options{FusedAttention: true, CUDAKernels: true}}
	if n := p.imagesPerCall(128, 128, true); n <= plain || n > maxGroupNormRows/2 {
		t.Errorf("SDXL 1024² guided per call: %d fp16 fused, %d plain fp32; want more, at most %d", n, plain, maxGroupNormRows/2)
	} else {
		t.Logf("SDXL 1024² guided per call in the default budget: %d fp16 fused, %d plain fp32", n, plain)
	}
}

func TestNoiseRNGIsStable(t *testing.T) {
	t.Parallel()
	for _, rng := range []string{"", diffute.RNGTorch, diffute.RNGCUDA} {
		a, err := newNoiseRNG(rng, 42)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := newNoiseRNG(rng, 42)
		x, y := make([]float32, 16), make([]float32, 16)
		a.Randn(x)
		b.Randn(y)
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("%q: same seed, different noise", rng)
			}
		}
		c, _ := newNoiseRNG(rng, 43)
		c.Randn(y)
		if x[0] == y[0] && x[1] == y[1] {
			t.Errorf("%q: seeds 42 and 43 give the same noise", rng)
		}
	}
	if _, err := newNoiseRNG("mt", 1); diffute.ErrorField(err) != "rng" {
		t.Errorf("unknown rng: error %v, want one naming the field rng", err)
	}
}

// The starting latents of seed 0 are torch.randn((1,4,8,8),
// generator=torch.Generator("cpu").manual_seed(0)): the first values of the
// fixture's torch.randn((1,4,64,64)) of seed 0 (a prefix, since both counts
// are multiples of 16; torchrng's tests check the whole file).
func TestNoiseRNGTorchValues(t *testing.T) {
	t.Parallel()
	r, err := newNoiseRNG(diffute.RNGTorch, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 256)
	r.Randn(got)
	want := []float32{-1.1258398294448853, -1.152360200881958, -0.2505785822868347, -0.4338788092136383,
		0.8487103581428528, 0.6920091509819031, -0.31601276993751526, -2.1152193546295166}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("[%d] = %.8g, want %.8g", i, got[i], w)
		}
	}
}
