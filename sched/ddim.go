package sched

import (
	"fmt"
	"math"
)

// DDIM is the deterministic DDIM sampler (Song et al. 2020, η = 0), diffusers'
// DDIMScheduler. It works on variance-preserving latents: InitNoiseSigma and
// ScaleModelInput are 1.
type DDIM struct {
	steps       int
	pred        prediction
	clip        float64 // x0 is clipped to [−clip, clip] when > 0
	timesteps   []float64
	alphas      []float64 // ᾱ at each step's timestep
	alphasPrev  []float64 // ᾱ at the timestep the step lands on
	trainAlphas []float64
}

func newDDIM(cfg Config, steps int, pred prediction) (*DDIM, error) {
	ac, err := cfg.alphasCumprod()
	if err != nil {
		return nil, err
	}
	ts, err := spacedTimesteps(cfg, cfg.Spacing(NameDDIM), steps)
	if err != nil {
		return nil, err
	}
	final := ac[0]
	if cfg.SetAlphaToOne {
		final = 1
	}
	d := &DDIM{steps: len(ts), pred: pred, timesteps: ts, trainAlphas: ac,
		alphas: make([]float64, len(ts)), alphasPrev: make([]float64, len(ts))}
	if cfg.ClipSample {
		d.clip = cfg.ClipSampleRange
	}
	// diffusers steps back by N/steps from each timestep whatever the spacing,
	// so the landing timestep is not always the next one in the list.
	back := cfg.NumTrainTimesteps / steps
	for i := range ts {
		ts[i] = math.RoundToEven(ts[i])
		t := int(ts[i])
		if t >= 0 {
			d.alphas[i] = ac[t]
		} else {
			// Trailing spacing at 61 steps ends at timestep -1, and torch's
			// alphas_cumprod[-1] is the last training step.
			d.alphas[i] = ac[len(ac)+t]
		}
		d.alphasPrev[i] = final
		if p := t - back; p >= 0 {
			d.alphasPrev[i] = ac[p]
		}
	}
	return d, nil
}

// Name returns "ddim".
func (d *DDIM) Name() string { return NameDDIM }

// Timesteps returns the integer model timesteps, as float64.
func (d *DDIM) Timesteps() []float64 { return d.timesteps }

// Sigmas returns nil: DDIM is parameterised by ᾱ, not σ.
func (d *DDIM) Sigmas() []float64 { return nil }

// InitNoiseSigma is 1.
func (d *DDIM) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput is 1.
func (d *DDIM) ScaleModelInput(int) float32 { return 1 }

// NeedsNoise is false: η = 0.
func (d *DDIM) NeedsNoise() bool { return false }

// Step applies x ← √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε̂.
func (d *DDIM) Step(step int, modelOutput, sample, noise []float32) error {
	if err := checkStep(NameDDIM, step, d.steps, modelOutput, sample); err != nil {
		return err
	}
	a, ap := d.alphas[step], d.alphasPrev[step]
	sa, sb := math.Sqrt(a), math.Sqrt(1-a)
	px, pm := x0Coefficients(d.pred, sa, sb)
	// ε̂ = qx·x + qm·m, from the model output before any clipping of x0 (as
	// diffusers does without use_clipped_model_output).
	var qx, qm float64
	switch d.pred {
	case predictV:
		qx, qm = sb, sa
	case predictSample:
		qx, qm = 1/sb, -sa/sb
	default:
		qx, qm = 0, 1
	}
	sap, sbp := math.Sqrt(ap), math.Sqrt(1-ap)
	if d.clip > 0 {
		for i, x := range sample {
			xv, mv := float64(x), float64(modelOutput[i])
			x0 := clip(px*xv+pm*mv, d.clip)
			sample[i] = float32(sap*x0 + sbp*(qx*xv+qm*mv))
		}
		return nil
	}
	// Without clipping the update is linear in x and m: fold the coefficients.
	ax, am := sap*px+sbp*qx, sap*pm+sbp*qm
	for i, x := range sample {
		sample[i] = float32(ax*float64(x) + am*float64(modelOutput[i]))
	}
	return nil
}

func clip(v, r float64) float64 {
	if r <= 0 {
		return v
	}
	return math.Min(math.Max(v, -r), r)
}

// LCM is the Latent Consistency Model multistep sampler (Luo et al. 2023),
// diffusers' LCMScheduler: each step predicts the denoised latents through the
// consistency boundary condition and, except on the last step, re-noises them
// to the next timestep with fresh noise.
type LCM struct {
	steps      int
	pred       prediction
	clip       float64
	timesteps  []float64
	alphas     []float64
	alphasPrev []float64
	cSkip      []float64
	cOut       []float64
}

func newLCM(cfg Config, steps int, pred prediction) (*LCM, error) {
	orig := cfg.OriginalInferenceSteps
	if steps > orig {
		return nil, fmt.Errorf("sched: lcm: steps must be at most original_inference_steps=%d, got %d", orig, steps)
	}
	ac, err := cfg.alphasCumprod()
	if err != nil {
		return nil, err
	}
	// The distillation schedule is k−1, 2k−1, …, orig·k−1 with k = N/orig; the
	// inference schedule takes evenly spaced (floored) indices into it from the top.
	k := cfg.NumTrainTimesteps / orig
	ts := make([]int, steps)
	for i, x := range npLinspace(0, float64(orig), steps, false) {
		idx := int(math.Floor(x))
		ts[i] = (orig-idx)*k - 1
	}
	l := &LCM{steps: steps, pred: pred, timesteps: make([]float64, steps),
		alphas: make([]float64, steps), alphasPrev: make([]float64, steps),
		cSkip: make([]float64, steps), cOut: make([]float64, steps)}
	if cfg.ClipSample {
		l.clip = cfg.ClipSampleRange
	}
	const sigmaData = 0.5
	for i, t := range ts {
		l.timesteps[i] = float64(t)
		l.alphas[i] = ac[t]
		prev := t
		if i+1 < steps {
			prev = ts[i+1]
		}
		l.alphasPrev[i] = ac[prev]
		st := float64(t) * cfg.TimestepScaling
		l.cSkip[i] = sigmaData * sigmaData / (st*st + sigmaData*sigmaData)
		l.cOut[i] = st / math.Sqrt(st*st+sigmaData*sigmaData)
	}
	return l, nil
}

// Name returns "lcm".
func (l *LCM) Name() string { return NameLCM }

// Timesteps returns the integer model timesteps, as float64.
func (l *LCM) Timesteps() []float64 { return l.timesteps }

// Sigmas returns nil: LCM is parameterised by ᾱ, not σ.
func (l *LCM) Sigmas() []float64 { return nil }

// InitNoiseSigma is 1.
func (l *LCM) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput is 1.
func (l *LCM) ScaleModelInput(int) float32 { return 1 }

// NeedsNoise is true when there is more than one step: every step but the last
// re-noises its prediction.
func (l *LCM) NeedsNoise() bool { return l.steps > 1 }

// Step computes the denoised latents c_out·x0 + c_skip·x and, unless step is
// the last, re-noises them: x ← √ᾱ_next·denoised + √(1−ᾱ_next)·noise.
func (l *LCM) Step(step int, modelOutput, sample, noise []float32) error {
	if err := checkStep(NameLCM, step, l.steps, modelOutput, sample); err != nil {
		return err
	}
	a := l.alphas[step]
	px, pm := x0Coefficients(l.pred, math.Sqrt(a), math.Sqrt(1-a))
	cs, co := l.cSkip[step], l.cOut[step]
	// x' = sap·denoised + sbz·noise, with sap = 1 and sbz = 0 on the last step.
	sap, sbz := 1.0, 0.0
	if step < l.steps-1 {
		if err := checkNoise(NameLCM, noise, sample); err != nil {
			return fmt.Errorf("%w (step %d)", err, step)
		}
		ap := l.alphasPrev[step]
		sap, sbz = math.Sqrt(ap), math.Sqrt(1-ap)
	}
	switch {
	case l.clip > 0:
		for i, x := range sample {
			xv := float64(x)
			den := co*clip(px*xv+pm*float64(modelOutput[i]), l.clip) + cs*xv
			sample[i] = float32(sap*den + sbz*noiseAt(noise, i))
		}
	case sbz == 0:
		ax, am := sap*(co*px+cs), sap*co*pm
		for i, x := range sample {
			sample[i] = float32(ax*float64(x) + am*float64(modelOutput[i]))
		}
	default:
		// Without clipping the denoised latents are linear in x and m.
		ax, am := sap*(co*px+cs), sap*co*pm
		noise = noise[:len(sample)]
		for i, x := range sample {
			sample[i] = float32(ax*float64(x) + am*float64(modelOutput[i]) + sbz*float64(noise[i]))
		}
	}
	return nil
}

func noiseAt(noise []float32, i int) float64 {
	if noise == nil {
		return 0
	}
	return float64(noise[i])
}
