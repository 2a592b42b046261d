package onnx

import (
	"context"
	"fmt"
	"math"
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
	// Requests runs that many generations at once in the timed part (default
	// 1); with Batch they share UNet batches (WithRequestBatching).
	Requests int
	Batch    bool
	// MaxBatchBytes is the UNet memory budget (WithMaxBatchBytes; 0: the
	// default), which decides how many images share a call.
	MaxBatchBytes int64
	// Cases, when set, are measured in turn on the one loaded pipeline
	// instead of Steps, Size, NumImages and Guidance.
	Cases []BenchCase
	// Check compares each case's final latents with those of the plain fp32
	// graph (standard operators only) on the same device: what the fp16
	// graph and the fused kernels change, on the machine that runs them.
	Check bool
}

// BenchCase is one measured shape.
type BenchCase struct {
	Size, Steps, NumImages int
	Guidance               *float64 // nil: the model's default
}

// BenchResult is one measured generation.
type BenchResult struct {
	Device       string  `json:"device"`
	Family       string  `json:"family"`
	Size         int     `json:"size"`
	Steps        int     `json:"steps"`
	NumImages    int     `json:"num_images"`
	Guidance     float64 `json:"guidance"`
	Requests     int     `json:"requests"`
	Batch        bool    `json:"batch_requests"`
	LoadSeconds  float64 `json:"load_s"`
	WarmupSecs   float64 `json:"warmup_s"`         // a first, one-step generation (cuDNN search, allocations)
	ImageSeconds float64 `json:"image_s"`          // wall time of the timed generations, per image
	UNetMsStep   float64 `json:"unet_ms_per_step"` // all of a step's UNet calls
	UNetBatches  int     `json:"unet_batches"`     // UNet batches the images took, each every step (the budget splits them)
	// StepHostMs is a step's time in the loop outside the UNet's Run: writing
	// its input, guidance and the scheduler step, done in Go on the host while
	// the device waits. It is what keeping the latents on the GPU between steps
	// could save at most (the copies in and out are inside unet_ms_per_step).
	StepHostMs float64 `json:"step_host_ms"`
	DecodeMs   float64 `json:"decode_ms"`
	// GPUMemoryMiB is the device's used memory after the case (NVML): ONNX
	// Runtime's arena keeps what it grew to, so it is the peak so far.
	GPUMemoryMiB float64 `json:"gpu_memory_mib,omitempty"`
	// CheckMaxRelDiff (Check) is max |latent − plain fp32 latent| over max
	// |plain fp32 latent|, for the case's first UNet batch.
	CheckMaxRelDiff *float64       `json:"check_max_rel_diff,omitempty"`
	GraphInfo       `json:"graph"` // how the built graphs computed
}

// Bench loads the model folder dir on opts.Device and, for each case, runs a
// one-step warm-up, then one timed generation (or opts.Requests at once), and
// reports load time, seconds per image, UNet time per step and VAE decode
// time: what BenchmarkFullSize measures, callable from the diffute binary
// where no Go toolchain is (a GPU machine). emit gets each case's result as
// it is measured.
func Bench(ctx context.Context, dir string, opts BenchOptions, emit func(BenchResult)) error {
	if opts.Device == "" {
		opts.Device = "cpu"
	}
	if opts.Requests <= 0 {
		opts.Requests = 1
	}
	if len(opts.Cases) == 0 {
		opts.Cases = []BenchCase{{Size: opts.Size, Steps: opts.Steps, NumImages: opts.NumImages, Guidance: opts.Guidance}}
	}
	if err := InitRuntime(""); err != nil {
		return err
	}
	start := time.Now()
	lo := []Option{WithDevice(opts.Device), WithPrecision(opts.Precision), WithFusedOperators(!opts.Unfused), WithCUDAOptions(opts.CUDA), WithMaxBatchBytes(opts.MaxBatchBytes)}
	if opts.Batch {
		lo = append(lo, WithRequestBatching(0))
	}
	p, err := LoadPipeline(dir, lo...)
	if err != nil {
		return err
	}
	defer p.Close()
	load := time.Since(start).Seconds()
	var ref *Pipeline
	if opts.Check {
		if ref, err = LoadPipeline(dir, WithDevice(opts.Device), WithPrecision(PrecisionFP32), WithFusedOperators(false), WithCUDAOptions(opts.CUDA), WithMaxBatchBytes(opts.MaxBatchBytes)); err != nil {
			return fmt.Errorf("onnx: bench check: the plain fp32 graph: %w", err)
		}
		defer ref.Close()
	}
	for _, c := range opts.Cases {
		res, err := p.benchCase(ctx, opts, c)
		if err != nil {
			return err
		}
		res.LoadSeconds = load
		if ref != nil {
			d, err := p.compareLatents(ctx, ref, res)
			if err != nil {
				return fmt.Errorf("onnx: bench check: %w", err)
			}
			res.CheckMaxRelDiff = &d
		}
		emit(res)
	}
	return nil
}

// compareLatents denoises the first UNet batch of res's shape on p and on ref
// and returns max |p − ref| / max |ref| of the final latents.
func (p *Pipeline) compareLatents(ctx context.Context, ref *Pipeline, res BenchResult) (float64, error) {
	g := res.Guidance
	req := diffute.GenerateRequest{Prompt: "a lighthouse at dusk", NumImages: res.NumImages, Width: res.Size, Height: res.Size, Steps: res.Steps, Seed: 1, GuidanceScale: &g}
	got, err := p.latentsOf(ctx, req)
	if err != nil {
		return 0, err
	}
	want, err := ref.latentsOf(ctx, req)
	if err != nil {
		return 0, err
	}
	var diff, scale float64
	for i, w := range want {
		diff = max(diff, math.Abs(float64(got[i])-float64(w)))
		scale = max(scale, math.Abs(float64(w)))
	}
	if scale == 0 {
		return diff, nil
	}
	return diff / scale, nil
}

// latentsOf denoises the first UNet batch of req and returns its final
// latents, as run does before decoding.
func (p *Pipeline) latentsOf(ctx context.Context, req diffute.GenerateRequest) ([]float32, error) {
	if err := p.acquire(); err != nil {
		return nil, err
	}
	defer p.release()
	pr, err := p.params(req)
	if err != nil {
		return nil, err
	}
	pe, err := p.encodePrompts(req.Prompt, req.NegativePrompt, pr.guided)
	if err != nil {
		return nil, err
	}
	lh, lw := req.Height/8, req.Width/8
	n := min(req.NumImages, p.imagesPerCall(lh, lw, pr.guided))
	return p.denoise(ctx, []chunk{{pr: pr, pe: pe, n: n}}, lh, lw, nil)
}

func (p *Pipeline) benchCase(ctx context.Context, opts BenchOptions, c BenchCase) (BenchResult, error) {
	if c.Steps <= 0 {
		c.Steps = 4
	}
	if c.NumImages <= 0 {
		c.NumImages = 1
	}
	if c.Size <= 0 {
		c.Size = 512
		if p.Family() == SDXL {
			c.Size = 1024
		}
	}
	res := BenchResult{Device: opts.Device, Family: fmt.Sprint(p.Family()), Size: c.Size, Steps: c.Steps, NumImages: c.NumImages,
		Requests: opts.Requests, Batch: opts.Batch, GraphInfo: p.Graph()}
	req := diffute.GenerateRequest{Prompt: "a lighthouse at dusk", NumImages: c.NumImages, Width: c.Size, Height: c.Size, Steps: 1, Seed: 1, GuidanceScale: c.Guidance}
	pr, err := p.params(req)
	if err != nil {
		return res, err
	}
	res.Guidance = pr.guidance
	start := time.Now()
	if _, err := p.run(ctx, req, nil, &runStats{}); err != nil {
		return res, fmt.Errorf("onnx: bench warm-up: %w", err)
	}
	res.WarmupSecs = time.Since(start).Seconds()
	req.Steps = c.Steps
	if opts.Requests > 1 {
		// Concurrent requests, each its own seeds: throughput, with or
		// without cross-request batching. The per-step figures are not
		// separable here and stay zero.
		start = time.Now()
		errs := make(chan error, opts.Requests)
		for i := range opts.Requests {
			r := req
			r.Seed = int64(1 + i*c.NumImages)
			go func() {
				_, err := p.Run(ctx, r, nil)
				errs <- err
			}()
		}
		var first error
		for range opts.Requests {
			if err := <-errs; err != nil && first == nil {
				first = fmt.Errorf("onnx: bench: %w", err)
			}
		}
		res.ImageSeconds = time.Since(start).Seconds() / float64(opts.Requests*c.NumImages)
		res.GPUMemoryMiB = gpuMemoryMiB(opts.Device)
		return res, first
	}
	var st runStats
	start = time.Now()
	if _, err := p.run(ctx, req, nil, &st); err != nil {
		return res, fmt.Errorf("onnx: bench: %w", err)
	}
	res.ImageSeconds = time.Since(start).Seconds() / float64(c.NumImages)
	res.UNetMsStep = float64(st.unetRun.Microseconds()) / 1e3 / float64(c.Steps)
	res.StepHostMs = float64((st.denoise - st.unetRun).Nanoseconds()) / 1e6 / float64(c.Steps)
	res.UNetBatches = st.calls
	res.DecodeMs = float64(st.decoding.Microseconds()) / 1e3
	res.GPUMemoryMiB = gpuMemoryMiB(opts.Device)
	return res, nil
}

// gpuMemoryMiB is the used memory of device's GPU by NVML's count, or 0 (the
// CPU, no NVML). CUDA's cuda:N is NVML's index N in PCI bus order.
func gpuMemoryMiB(device string) float64 {
	dev, err := parseDevice(device)
	if err != nil || dev < 0 {
		return 0
	}
	gpus, err := GPUs()
	if err != nil || dev >= len(gpus) {
		return 0
	}
	return float64(gpus[dev].Used) / (1 << 20)
}
