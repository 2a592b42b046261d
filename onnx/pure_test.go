package onnx

import (
	"math"
	"testing"

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
	p.maxBatchBytes = 2 * unetBytesPerRow(8, 8) * 2
	if n := p.imagesPerCall(8, 8, true); n != 2 {
		t.Errorf("budget of two guided images: %d per call", n)
	}
}

func TestNoiseRNGIsStable(t *testing.T) {
	t.Parallel()
	a, b := newNoiseRNG(42), newNoiseRNG(42)
	x, y := make([]float32, 16), make([]float32, 16)
	fillNormal(a, x)
	fillNormal(b, y)
	for i := range x {
		if x[i] != y[i] {
			t.Fatal("same seed, different noise")
		}
	}
	fillNormal(newNoiseRNG(43), y)
	if x[0] == y[0] && x[1] == y[1] {
		t.Error("seeds 42 and 43 give the same noise")
	}
}
