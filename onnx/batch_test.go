package onnx

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// TestRequestBatching runs four requests at once on a pipeline that batches
// across requests: the two with the same size, steps, scheduler and guidance
// (euler_a, whose step noise continues each image's own generator) share one
// UNet batch, the 96×64 one and the two-step one run in their own; every image
// is the one the request makes alone, within one level of the rounding a
// batch size can change. A caller that has gone before its batch starts gets
// its context's error and costs no batch.
func TestRequestBatching(t *testing.T) {
	t.Parallel()
	dir := tinyModel(t, tinySD)
	p, err := LoadPipeline(dir, WithRequestBatching(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	fox := baseRequest()
	fox.Prompt, fox.Seed, fox.Scheduler = "a red fox in the snow", 11, "euler_a"
	house := baseRequest()
	house.NumImages, house.Scheduler = 1, "euler_a"
	wide := baseRequest()
	wide.Width, wide.NumImages = 96, 1
	short := baseRequest()
	short.Steps, short.NumImages = 2, 1
	reqs := []diffute.GenerateRequest{fox, house, wide, short}

	results := make([]Result, len(reqs))
	errs := make([]error, len(reqs))
	steps := make([]int, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = p.Run(context.Background(), req, func(diffute.Progress) { steps[i]++ })
		}()
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Run(gone, baseRequest(), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled caller: err = %v, want context.Canceled", err)
	}
	wg.Wait()
	if b, m := p.batcher.stats.Batches.Load(), p.batcher.stats.Shared.Load(); b != 3 || m != 1 {
		t.Errorf("%d batches, %d of them shared, want 3 and 1", b, m)
	}
	alone := sharedPipeline(t, tinySD)
	for i, req := range reqs {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if steps[i] != req.Steps {
			t.Errorf("request %d: %d progress calls, want %d", i, steps[i], req.Steps)
		}
		want := generate(t, alone, req)
		if len(results[i].Images) != len(want) {
			t.Fatalf("request %d: %d images, want %d", i, len(results[i].Images), len(want))
		}
		for k := range want {
			if d := maxDiff(pixels(t, want[k]), pixels(t, results[i].Images[k])); d > 1 {
				t.Errorf("request %d image %d: batched and alone differ by up to %d levels", i, k, d)
			}
		}
	}
}

// TestGPUBindingOrder runs the binding order a GPU session gets (conditioning
// bound once after it is written, the sample bound again at every step) on the
// CPU provider: the images are the CPU path's, pixel for pixel.
func TestGPUBindingOrder(t *testing.T) {
	t.Parallel()
	for _, name := range []string{tinySD, tinySDXL} {
		p, err := LoadPipeline(tinyModel(t, name))
		if err != nil {
			t.Fatal(err)
		}
		p.unet.bindOnce = false
		req := baseRequest()
		req.Scheduler = "euler_a"
		got := generate(t, p, req)
		want := generate(t, sharedPipeline(t, name), req)
		for i := range want {
			if !samePixels(t, got[i], want[i]) {
				t.Errorf("%s image %d: the GPU binding order changes the pixels", name, i)
			}
		}
		p.Close()
	}
}
