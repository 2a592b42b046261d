package onnx

import (
	"testing"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/sched"
)

// An absent negative prompt and "" are different requests on SDXL, whose
// model_index sets force_zeros_for_empty_prompt (zeros vs the encoded ""), and
// the same request on SD (both encode ""), as in diffusers.
func TestNegativePromptAbsentVersusEmpty(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		model string
		same  bool
	}{{tinySD, true}, {tinySDXL, false}} {
		t.Run(tc.model, func(t *testing.T) {
			t.Parallel()
			p := sharedPipeline(t, tc.model)
			req := baseRequest()
			req.NumImages = 1
			req.GuidanceScale = ptr(7.5)
			absent := generate(t, p, req)
			req.NegativePrompt = ptr("")
			empty := generate(t, p, req)
			if got := samePixels(t, absent[0], empty[0]); got != tc.same {
				t.Errorf("absent and \"\" negative prompt give the same image: %v, want %v", got, tc.same)
			}
		})
	}
}

// The rng decides the noise: torch and cuda differ; under torch a seed and the
// same seed + 2^32 give the same image (torch seeds mt19937 with the low 32
// bits), under cuda they do not. Ancestral schedulers draw their step noise
// from the same per-image generator, so a run is reproducible.
func TestRNGChoosesTheNoise(t *testing.T) {
	t.Parallel()
	p := sharedPipeline(t, tinySD)
	req := baseRequest()
	req.NumImages = 1
	req.Scheduler = sched.NameEulerAncestral
	req.RNG = diffute.RNGTorch
	torch := generate(t, p, req)
	again := generate(t, p, req)
	if !samePixels(t, torch[0], again[0]) {
		t.Fatal("euler_a with rng torch is not reproducible")
	}
	req.Seed += 1 << 32
	if high := generate(t, p, req); !samePixels(t, torch[0], high[0]) {
		t.Error("rng torch: seed+2^32 differs from seed; torch uses only the low 32 bits")
	}
	req.RNG = diffute.RNGCUDA
	cudaHigh := generate(t, p, req)
	req.Seed -= 1 << 32
	cuda := generate(t, p, req)
	if samePixels(t, torch[0], cuda[0]) {
		t.Error("rng torch and cuda give the same image")
	}
	if samePixels(t, cuda[0], cudaHigh[0]) {
		t.Error("rng cuda: seed+2^32 gives the same image as seed; all 64 bits should count")
	}
	req.RNG = "xorshift"
	if _, err := p.Generate(t.Context(), req, nil); diffute.ErrorField(err) != "rng" {
		t.Errorf("unknown rng: %v, want an error naming rng", err)
	}
}

// Image i of a request is image 0 of the same request with seed+i: each image
// has its own generator.
func TestImageSeedsAreIndependent(t *testing.T) {
	t.Parallel()
	p := sharedPipeline(t, tinySD)
	req := baseRequest()
	req.Scheduler = sched.NameEulerAncestral
	req.NumImages = 2
	both := generate(t, p, req)
	req.NumImages = 1
	req.Seed++
	second := generate(t, p, req)
	if !samePixels(t, both[1], second[0]) {
		t.Error("image 1 of seed s differs from image 0 of seed s+1")
	}
}

// With trailing spacing, diffusers' np.arange gives 62 timesteps for 61 steps;
// the pipeline runs all of them and progress counts them.
func TestTrailingSixtyOneSteps(t *testing.T) {
	t.Parallel()
	p := sharedPipeline(t, tinySDXLTurbo)
	req := baseRequest()
	req.NumImages = 1
	req.Steps = 61
	var last diffute.Progress
	calls := 0
	if _, err := p.Generate(t.Context(), req, func(pr diffute.Progress) { last = pr; calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls != 62 || last != (diffute.Progress{Step: 62, Steps: 62}) {
		t.Errorf("%d progress calls, last %+v; want 62 of 62", calls, last)
	}
}
