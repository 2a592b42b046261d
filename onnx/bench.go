package onnx

import (
	"context"
	"fmt"
	"time"

	"github.com/diffute/diffute"
)

// BenchOptions says what Bench measures.
type BenchOptions struct {
	Device    string // "cpu" (default) or "cuda:N"
	Steps     int    // denoising steps (default 4)
	Size      int    // width and height (default: 512, 1024 for SDXL)
	NumImages int    // images per call (default 1)
	Guidance  *float64
	Precision string            // WithPrecision ("": auto)
	Unfused   bool              // WithFusedOperators(false): the plain graph
	CUDA      map[string]string // WithCUDAOptions
}

// BenchResult is one measured generation.
type BenchResult struct {
	Device       string         `json:"device"`
	Family       string         `json:"family"`
	Size         int            `json:"size"`
	Steps        int            `json:"steps"`
	NumImages    int            `json:"num_images"`
	LoadSeconds  float64        `json:"load_s"`
	WarmupSecs   float64        `json:"warmup_s"` // a first, one-step generation (cuDNN search, allocations)
	ImageSeconds float64        `json:"image_s"`  // wall time of the timed generation, per image
	UNetMsStep   float64        `json:"unet_ms_per_step"`
	DecodeMs     float64        `json:"decode_ms"`
	GraphInfo    `json:"graph"` // how the built graphs computed
}

// Bench loads the model folder dir on opts.Device, runs a one-step warm-up, then
// one timed generation, and reports load time, seconds per image, UNet time per
// step and VAE decode time: what BenchmarkFullSize measures, callable from the
// diffute binary where no Go toolchain is (a GPU machine).
func Bench(ctx context.Context, dir string, opts BenchOptions) (BenchResult, error) {
	if opts.Steps <= 0 {
		opts.Steps = 4
	}
	if opts.NumImages <= 0 {
		opts.NumImages = 1
	}
	if opts.Device == "" {
		opts.Device = "cpu"
	}
	if err := InitRuntime(""); err != nil {
		return BenchResult{}, err
	}
	start := time.Now()
	p, err := LoadPipeline(dir, WithDevice(opts.Device), WithPrecision(opts.Precision), WithFusedOperators(!opts.Unfused), WithCUDAOptions(opts.CUDA))
	if err != nil {
		return BenchResult{}, err
	}
	defer p.Close()
	res := BenchResult{Device: opts.Device, Family: fmt.Sprint(p.Family()), Steps: opts.Steps, NumImages: opts.NumImages, LoadSeconds: time.Since(start).Seconds(), GraphInfo: p.Graph()}
	if opts.Size <= 0 {
		opts.Size = 512
		if p.Family() == SDXL {
			opts.Size = 1024
		}
	}
	res.Size = opts.Size
	req := diffute.GenerateRequest{Prompt: "a lighthouse at dusk", NumImages: opts.NumImages, Width: opts.Size, Height: opts.Size, Steps: 1, Seed: 1, GuidanceScale: opts.Guidance}
	start = time.Now()
	if _, err := p.run(ctx, req, nil, &runStats{}); err != nil {
		return res, fmt.Errorf("onnx: bench warm-up: %w", err)
	}
	res.WarmupSecs = time.Since(start).Seconds()
	req.Steps = opts.Steps
	var st runStats
	start = time.Now()
	if _, err := p.run(ctx, req, nil, &st); err != nil {
		return res, fmt.Errorf("onnx: bench: %w", err)
	}
	res.ImageSeconds = time.Since(start).Seconds() / float64(opts.NumImages)
	res.UNetMsStep = float64(st.unetRun.Microseconds()) / 1e3 / float64(opts.Steps)
	res.DecodeMs = float64(st.decoding.Microseconds()) / 1e3
	return res, nil
}
