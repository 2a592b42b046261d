package onnx

import (
	"context"
	"fmt"
	"image"
	"math"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/clip"
	"github.com/diffute/diffute/sched"
	"github.com/diffute/diffute/torchrng"
)

// MaxSide is the largest width or height the pipeline accepts, a guard against
// allocations no machine can satisfy; deployments set tighter limits
// (diffute.Limits).
const MaxSide = 16384

// Default generation parameters.
const (
	DefaultSteps        = 25
	DefaultTurboSteps   = 1
	DefaultGuidanceSD   = 7.5
	DefaultGuidanceSDXL = 5.0
)

// Result is what a generation produced: the images, and warnings the caller may log
// (for example a prompt longer than the tokenizer's 77 tokens, which was truncated).
type Result struct {
	Images   []image.Image
	Warnings []string
}

// params are a request with the model's defaults filled in.
type params struct {
	req      diffute.GenerateRequest
	steps    int
	guidance float64
	guided   bool // classifier-free guidance: guidance > 1
}

// Defaults returns the steps and guidance scale a request gets when it leaves them
// unset: 25 steps and 7.5 (SD) or 5.0 (SDXL); trailing-spacing ("turbo") models
// get 1 step and no guidance.
func (p *Pipeline) Defaults() (steps int, guidance float64) {
	return modelDefaults(p.family, p.turbo)
}

func (p *Pipeline) params(req diffute.GenerateRequest) (params, error) {
	pr := params{req: req}
	for _, side := range []struct {
		name string
		v    int
	}{{"width", req.Width}, {"height", req.Height}} {
		if side.v <= 0 || side.v%8 != 0 {
			return pr, diffute.FieldErrorf(diffute.EUNPROCESSABLE, side.name, "must be a positive multiple of 8 (got %d)", side.v)
		}
		if side.v > MaxSide {
			return pr, diffute.FieldErrorf(diffute.EUNPROCESSABLE, side.name, "must be at most %d (got %d)", MaxSide, side.v)
		}
	}
	if req.NumImages < 1 {
		return pr, diffute.FieldErrorf(diffute.EUNPROCESSABLE, "num_images", "must be at least 1 (got %d)", req.NumImages)
	}
	if req.Steps < 0 {
		return pr, diffute.FieldErrorf(diffute.EUNPROCESSABLE, "steps", "must not be negative (got %d)", req.Steps)
	}
	pr.steps, pr.guidance = p.Defaults()
	if req.Steps > 0 {
		pr.steps = req.Steps
	}
	if g := req.GuidanceScale; g != nil {
		if math.IsNaN(*g) || math.IsInf(*g, 0) || *g < 0 {
			return pr, diffute.FieldErrorf(diffute.EUNPROCESSABLE, "guidance_scale", "must be a finite number ≥ 0")
		}
		pr.guidance = *g
	}
	pr.guided = pr.guidance > 1
	if _, err := newNoiseRNG(req.RNG, 0); err != nil {
		return pr, err
	}
	return pr, nil
}

// Generate runs the pipeline for req; warnings are dropped (use Run to get them).
func (p *Pipeline) Generate(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress)) ([]image.Image, error) {
	res, err := p.Run(ctx, req, progress)
	return res.Images, err
}

// Run generates req.NumImages images of req.Prompt. Image i starts from the noise of
// seed req.Seed+i (see the package documentation). Images are denoised together in
// one UNet call per step (with guidance, on the [uncond…, cond…] batch), split into
// several calls when the batch's estimated memory exceeds the budget. progress, when
// not nil, is called after every step; with several calls the count runs over all
// of them. ctx is checked between steps.
func (p *Pipeline) Run(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress)) (Result, error) {
	return p.run(ctx, req, progress, nil)
}

// Warmup runs a one-step generation of one image at the model's native size
// (1024² for SDXL, 512² otherwise), with the model's default guidance: on a
// GPU the first run at a shape chooses cuDNN's convolution algorithms and
// sizes the memory arena, which should happen at load and not in a job.
func (p *Pipeline) Warmup(ctx context.Context) error {
	size := 512
	if p.family == SDXL {
		size = 1024
	}
	_, err := p.run(ctx, diffute.GenerateRequest{Prompt: "warm-up", NumImages: 1, Width: size, Height: size, Steps: 1, Seed: 1}, nil, nil)
	return err
}

// runStats collects where a generation's time went; benchmarks use it to separate
// the pipeline's own work from ONNX Runtime's.
type runStats struct {
	calls    int // UNet batches (one per split)
	unetRows int // batch rows of the last UNet call
	steps    int
	unetRun  time.Duration // inside the UNet session's Run
	denoise  time.Duration // the whole step loops
	decoding time.Duration
	// unfused turns off the one-pass step (tests compare both paths).
	unfused bool
	// Parts of the loop outside Run: input preparation, guidance, scheduler steps.
	prepare, guidance, schedStep time.Duration
	// Heap allocations during the step loops (runtime.MemStats deltas).
	loopAllocs, loopBytes uint64
}

func (p *Pipeline) run(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress), st *runStats) (Result, error) {
	var res Result
	if err := p.acquire(); err != nil {
		return res, err
	}
	defer p.release()
	pr, err := p.params(req)
	if err != nil {
		return res, err
	}
	// Build one scheduler up front so a bad scheduler name or step count fails
	// before any model runs.
	s0, err := sched.New(req.Scheduler, p.schedCfg, pr.steps)
	if err != nil {
		return res, diffute.FieldErrorf(diffute.EUNPROCESSABLE, "scheduler", "%v", err)
	}
	// diffusers' trailing spacing can give one timestep more than asked (61
	// steps: 62); progress counts the UNet calls that will run.
	stepsRun := len(s0.Timesteps())
	if err := ctx.Err(); err != nil {
		return res, err
	}
	pe, err := p.encodePrompts(req.Prompt, req.NegativePrompt, pr.guided)
	if err != nil {
		return res, err
	}
	res.Warnings = pe.warnings
	lh, lw := req.Height/8, req.Width/8
	perCall := p.imagesPerCall(lh, lw, pr.guided)
	calls := (req.NumImages + perCall - 1) / perCall
	prog := progressCounter{fn: progress, total: calls * stepsRun}
	for first := 0; first < req.NumImages; first += perCall {
		n := min(perCall, req.NumImages-first)
		c := chunk{pr: pr, pe: pe, first: first, n: n, step: prog.step}
		var latents []float32
		if p.batcher != nil {
			latents, err = p.batcher.denoise(ctx, c)
		} else {
			latents, err = p.denoise(ctx, []chunk{c}, lh, lw, st)
		}
		if err != nil {
			return Result{}, err
		}
		t0 := time.Now()
		per := p.unet.channels * lh * lw
		inv := float32(1 / p.scaleFactor)
		for i := 0; i < n; i++ {
			img := latents[i*per : (i+1)*per]
			for k := range img {
				img[k] *= inv
			}
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
			out, err := p.vae.decode(img, p.unet.channels, lh, lw)
			if err != nil {
				return Result{}, err
			}
			res.Images = append(res.Images, out)
		}
		if st != nil {
			st.decoding += time.Since(t0)
		}
	}
	return res, nil
}

// progressCounter numbers steps across the UNet calls of one generation.
type progressCounter struct {
	fn          func(diffute.Progress)
	done, total int
}

func (c *progressCounter) step() {
	c.done++
	if c.fn != nil {
		c.fn(diffute.Progress{Step: c.done, Steps: c.total})
	}
}

// unetBytesPerRow estimates the working memory one batch row adds to a UNet call at
// lh×lw latents: the widest feature maps (320 channels at latent resolution, about
// eight alive at once) plus one self-attention map at half resolution (10 heads;
// fused attention holds at most one head's at a time, CUDA's flash kernels none),
// in the UNet's compute type. It is a heuristic for splitting batches, not an
// exact account.
func (p *Pipeline) unetBytesPerRow(lh, lw int) int64 {
	elem, heads := int64(4), int64(10)
	if p.built != nil {
		if p.built.halfUNet {
			elem = 2
		}
		if p.built.graph.FusedAttention {
			heads = 1
		}
	}
	px := int64(lh) * int64(lw)
	conv := px * 320 * elem * 8
	tokens := px / 4
	attn := tokens * tokens * elem * heads
	return conv + attn
}

// imagesPerCall is how many images share one UNet call within the memory budget
// (at least one).
func (p *Pipeline) imagesPerCall(lh, lw int, guided bool) int {
	per := p.unetBytesPerRow(lh, lw)
	if guided {
		per *= 2
	}
	n := p.maxBatchBytes / per
	if n < 1 {
		return 1
	}
	if p.built != nil && p.built.graph.CUDAKernels {
		rows := int64(maxGroupNormRows)
		if guided {
			rows /= 2
		}
		n = min(n, rows)
	}
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(n)
}

// maxGroupNormRows is the largest batch the CUDA provider's GroupNorm kernel
// takes (sdgraph.Options.CUDAKernels).
const maxGroupNormRows = 32

// noiseRNG is one image's noise generator; successive draws continue its
// stream, as successive torch.randn calls on one torch.Generator do.
type noiseRNG interface {
	Randn(dst []float32)
}

// newNoiseRNG returns the generator of an image with seed seed: torch's CPU
// generator (rng "torch", or "" for the default) or the CUDA one ("cuda"), as
// torch.Generator(device).manual_seed(seed) makes them.
func newNoiseRNG(rng string, seed uint64) (noiseRNG, error) {
	switch rng {
	case "", diffute.RNGTorch:
		return torchrng.NewCPU(seed), nil
	case diffute.RNGCUDA:
		return torchrng.NewCUDA(seed), nil
	}
	return nil, diffute.FieldErrorf(diffute.EUNPROCESSABLE, "rng", "must be one of %s (got %q)", strings.Join(diffute.RNGNames, ", "), rng)
}

// chunk is images first..first+n-1 of one request: what one UNet batch
// denoises, alone or with other requests' chunks of the same size, steps,
// scheduler and guidance (requestBatcher). step reports each finished step.
type chunk struct {
	pr       params
	pe       promptEmbeds
	first, n int
	step     func()
}

// denoise runs the scheduler loop for the images of chunks, which share their
// size, steps, scheduler and guidance, in one UNet batch, and returns their
// final latents ([Σn, C, lh, lw], in chunk order). Everything the loop touches
// is allocated before the first step.
func (p *Pipeline) denoise(ctx context.Context, chunks []chunk, lh, lw int, st *runStats) ([]float32, error) {
	pr := chunks[0].pr
	s, err := sched.New(pr.req.Scheduler, p.schedCfg, pr.steps)
	if err != nil {
		return nil, diffute.FieldErrorf(diffute.EUNPROCESSABLE, "scheduler", "%v", err)
	}
	n := 0
	for _, c := range chunks {
		n += c.n
	}
	per := p.unet.channels * lh * lw
	total := n * per
	latents := make([]float32, total)
	// Image i has its own generator seeded with seed+i (diffusers with a list of
	// generators): its latents are randn(1, C, lh, lw) × init_noise_sigma, and
	// an ancestral scheduler's step noise continues the same stream, one
	// randn(1, C, lh, lw) per image per step, in step order. The scheduler's
	// update is the same elementwise arithmetic for every image, so images of
	// several requests share one scheduler.
	rngs := make([]noiseRNG, 0, n)
	sigma := float32(s.InitNoiseSigma())
	for _, c := range chunks {
		for i := range c.n {
			r, err := newNoiseRNG(c.pr.req.RNG, uint64(c.pr.req.Seed)+uint64(c.first+i))
			if err != nil {
				return nil, err
			}
			img := latents[len(rngs)*per : (len(rngs)+1)*per]
			r.Randn(img)
			for k := range img {
				img[k] *= sigma
			}
			rngs = append(rngs, r)
		}
	}
	groups := 1
	if pr.guided {
		groups = 2
	}
	timesteps := s.Timesteps()
	call, err := p.unet.newCall(groups*n, lh, lw, timesteps, chunks[0].pe.dim, chunks[0].pe.pooledDim)
	if err != nil {
		return nil, err
	}
	defer call.destroy()
	p.fillConditioning(call, chunks)
	if err := call.conditioned(); err != nil {
		return nil, err
	}
	if st != nil {
		st.calls++
		st.unetRows = call.rows
	}

	guided := make([]float32, total)
	var scratch, noise []float32
	if pr.guided && call.out.f32 == nil {
		scratch = make([]float32, total)
	}
	if s.NeedsNoise() {
		noise = make([]float32, total)
	}
	g := float32(pr.guidance)
	// Ancestral noise for a step is drawn while the UNet runs: it does not depend
	// on the UNet's output, and each image's generator is used by this one
	// goroutine in the same order, so the values are those of drawing it inline.
	var noiseReq, noiseDone chan struct{}
	if noise != nil {
		noiseReq, noiseDone = make(chan struct{}), make(chan struct{}, 1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range noiseReq {
				for k, r := range rngs {
					r.Randn(noise[k*per : (k+1)*per])
				}
				noiseDone <- struct{}{}
			}
		}()
		defer func() {
			close(noiseReq)
			wg.Wait()
		}()
	}
	var mem runtime.MemStats
	if st != nil {
		runtime.ReadMemStats(&mem)
		st.loopAllocs -= mem.Mallocs
		st.loopBytes -= mem.TotalAlloc
	}
	// With fp32 tensors and a linear scheduler, guidance, the scheduler step and the
	// next step's input scaling are one pass over the latents instead of three.
	lin, fused := s.(sched.Linear)
	fused = fused && call.out.f32 != nil && call.sample.f32 != nil && (st == nil || !st.unfused)
	prepared := false
	loopStart := time.Now()
	for i := range timesteps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tPrep := time.Now()
		// Both halves of a guided batch get the same latents (uncond rows, cond rows).
		if prepared {
			prepared = false
		} else if scale := s.ScaleModelInput(i); groups == 2 {
			call.sample.storeScaledTwice(0, total, latents, scale)
		} else {
			call.sample.storeScaled(0, latents, scale)
		}
		if noise != nil {
			noiseReq <- struct{}{}
		}
		t0 := time.Now()
		if st != nil {
			st.prepare += t0.Sub(tPrep)
		}
		err := call.run(i)
		if st != nil {
			st.unetRun += time.Since(t0)
		}
		if noise != nil {
			<-noiseDone // also on error: the buffer must be idle before returning
		}
		if err != nil {
			return nil, err
		}
		tGuide := time.Now()
		if fused {
			a, b, c, err := lin.StepCoefficients(i)
			if err != nil {
				return nil, fmt.Errorf("onnx: scheduler %s step %d: %w", s.Name(), i, err)
			}
			next := i+1 < len(timesteps)
			var scale float32
			if next {
				scale = s.ScaleModelInput(i + 1)
			}
			fusedStep(call.out.f32, call.sample.f32, total, pr.guided, g, latents, noise, a, b, c, next, scale)
			prepared = next
			if st != nil {
				st.steps++
				st.schedStep += time.Since(tGuide)
			}
			stepChunks(chunks)
			continue
		}
		if pr.guided {
			applyGuidance(call.out, total, g, guided, scratch)
		} else {
			call.out.load(0, guided)
		}
		tStep := time.Now()
		if err := s.Step(i, guided, latents, noise); err != nil {
			return nil, fmt.Errorf("onnx: scheduler %s step %d: %w", s.Name(), i, err)
		}
		if st != nil {
			st.steps++
			st.guidance += tStep.Sub(tGuide)
			st.schedStep += time.Since(tStep)
		}
		stepChunks(chunks)
	}
	if st != nil {
		st.denoise += time.Since(loopStart)
		runtime.ReadMemStats(&mem)
		st.loopAllocs += mem.Mallocs
		st.loopBytes += mem.TotalAlloc
	}
	return latents, nil
}

// fusedStep does guidance, a linear scheduler step and, when next, the next UNet
// input in one pass: m = uncond + g·(cond − uncond) (or the output itself without
// guidance), x ← a·x + b·m + c·noise, and input ← x·scale in each half of the batch.
// The arithmetic is that of applyGuidance and sched's Step, in the same order, so
// the pixels are the same as the unfused path's.
func fusedStep(out, in []float32, total int, guided bool, g float32, x, noise []float32, a, b, c float32, next bool, scale float32) {
	x = x[:total]
	u := out[:total]
	if guided && next && c == 0 {
		// The common case (guided, deterministic scheduler, not the last step),
		// written without branches or bounds checks in the loop.
		cond := out[total : 2*total][:len(x)]
		in0 := in[:total][:len(x)]
		in1 := in[total : 2*total][:len(x)]
		u = u[:len(x)]
		for k, xv := range x {
			uv := u[k]
			m := uv + g*(cond[k]-uv)
			v := a*xv + b*m
			x[k] = v
			sv := v * scale
			in0[k] = sv
			in1[k] = sv
		}
		return
	}
	if guided && next {
		// The same with an ancestral scheduler's noise term.
		cond := out[total : 2*total][:len(x)]
		in0 := in[:total][:len(x)]
		in1 := in[total : 2*total][:len(x)]
		u = u[:len(x)]
		noise = noise[:len(x)]
		for k, xv := range x {
			uv := u[k]
			m := uv + g*(cond[k]-uv)
			v := a*xv + b*m + c*noise[k]
			x[k] = v
			sv := v * scale
			in0[k] = sv
			in1[k] = sv
		}
		return
	}
	var cond, in0, in1 []float32
	if guided {
		cond = out[total : 2*total]
	}
	if next {
		in0 = in[:total]
		if guided {
			in1 = in[total : 2*total]
		}
	}
	if c != 0 {
		noise = noise[:total]
	}
	for k, xv := range x {
		m := u[k]
		if guided {
			m = m + g*(cond[k]-m)
		}
		var v float32
		if c != 0 {
			v = a*xv + b*m + c*noise[k]
		} else {
			v = a*xv + b*m
		}
		x[k] = v
		if next {
			sv := v * scale
			in0[k] = sv
			if guided {
				in1[k] = sv
			}
		}
	}
}

// applyGuidance writes uncond + g·(cond − uncond) into dst from a UNet output laid
// out as [uncond rows…, cond rows…] of total values each.
func applyGuidance(out *floatTensor, total int, g float32, dst, scratch []float32) {
	var u, c []float32
	if out.f32 != nil {
		u, c = out.f32[:total], out.f32[total:2*total]
	} else {
		out.load(0, dst)
		out.load(total, scratch)
		u, c = dst, scratch
	}
	c = c[:len(u)]
	dst = dst[:len(u)]
	for i, uv := range u {
		dst[i] = uv + g*(c[i]-uv)
	}
}

func stepChunks(chunks []chunk) {
	for _, c := range chunks {
		if c.step != nil {
			c.step()
		}
	}
}

// fillConditioning writes the text conditioning of every batch row: with
// guidance the first half of the rows are the unconditional ones, the second
// half the prompts'; in each half, every chunk's images in chunk order.
func (p *Pipeline) fillConditioning(call *unetCall, chunks []chunk) {
	pr := chunks[0].pr
	r := 0
	put := func(uncond bool) {
		for _, c := range chunks {
			hidden, pooled := c.pe.cond, c.pe.pooledCond
			if uncond {
				hidden, pooled = c.pe.uncond, c.pe.pooledUncond
			}
			for range c.n {
				call.hidden.store(r*clip.MaxLength*c.pe.dim, hidden)
				if call.embeds != nil {
					call.embeds.store(r*c.pe.pooledDim, pooled)
				}
				r++
			}
		}
	}
	if pr.guided {
		put(true)
	}
	put(false)
	if call.timeIDs != nil {
		// (original h, original w, crop top, crop left, target h, target w): no crop,
		// generated at the size asked for.
		h, w := float32(pr.req.Height), float32(pr.req.Width)
		ids := []float32{h, w, 0, 0, h, w}
		for k := 0; k < call.rows; k++ {
			call.timeIDs.store(6*k, ids)
		}
	}
}
