package sched

import (
	"fmt"
	"math"
	"slices"
)

// eulerSchedule is the σ schedule shared by Euler and Euler ancestral
// (diffusers EulerDiscreteScheduler.set_timesteps with the default linear
// interpolation and a final sigma of zero).
type eulerSchedule struct {
	steps     int
	timesteps []float64
	sigmas    []float64
	initSigma float64
	pred      prediction
}

func newEulerSchedule(cfg Config, spacing string, steps int, karras bool, pred prediction) (eulerSchedule, error) {
	ac, err := cfg.alphasCumprod()
	if err != nil {
		return eulerSchedule{}, err
	}
	train := trainSigmas(ac)
	ts, err := spacedTimesteps(cfg, spacing, steps)
	if err != nil {
		return eulerSchedule{}, err
	}
	// diffusers builds the timesteps as a float32 array (np.linspace(...,
	// dtype=np.float32) or .astype(np.float32)) and interpolates the sigmas at
	// those float32 values.
	for i := range ts {
		ts[i] = f32(ts[i])
	}
	n := len(ts) // steps, or steps+1 where numpy's arange gives one more
	sig := make([]float64, n, n+1)
	for i, t := range ts {
		sig[i] = interpGrid(t, train)
	}
	if karras {
		// The ramp spans the spaced schedule's own range, and each Karras sigma
		// is mapped back to the fractional timestep the model is evaluated at.
		sig = karrasSigmas(sig[0], sig[n-1], n)
		ls := logSigmas(train)
		for i, s := range sig {
			ts[i] = f32(sigmaToT(s, ls))
		}
	}
	sig = append(sig, 0)
	for i := range sig {
		sig[i] = f32(sig[i])
	}
	// init_noise_sigma on the float32 sigma tensor: σ_max, or
	// (σ_max² + 1) ** 0.5 with leading spacing, which never starts at the last
	// training step.
	maxSigma := float32(slices.Max(sig))
	init := float64(maxSigma)
	if spacing == "leading" {
		init = f32(math.Sqrt(float64(maxSigma*maxSigma + 1)))
	}
	return eulerSchedule{steps: n, timesteps: ts, sigmas: sig, initSigma: init, pred: pred}, nil
}

// Timesteps returns the model timesteps (fractional with Karras sigmas or
// linspace spacing).
func (e *eulerSchedule) Timesteps() []float64 { return e.timesteps }

// Sigmas returns the σ schedule, ending with 0.
func (e *eulerSchedule) Sigmas() []float64 { return e.sigmas }

// InitNoiseSigma is σ_max, or sqrt(σ_max²+1) with leading spacing.
func (e *eulerSchedule) InitNoiseSigma() float64 { return e.initSigma }

// ScaleModelInput is 1/sqrt(σ_step²+1), which brings the σ-space latents back
// to unit variance for the UNet; 1 for a step outside the schedule.
func (e *eulerSchedule) ScaleModelInput(step int) float32 {
	if step < 0 || step >= e.steps {
		return 1
	}
	s := e.sigmas[step]
	return float32(1 / math.Sqrt(s*s+1))
}

// x0Coefficients gives x0 = px·x + pm·m for the σ-space sample x = x0 + σ·ε.
func (e *eulerSchedule) x0Coefficients(sigma float64) (px, pm float64) {
	switch e.pred {
	case predictV:
		return 1 / (sigma*sigma + 1), -sigma / math.Sqrt(sigma*sigma+1)
	case predictSample:
		return 0, 1
	default:
		return 1, -sigma
	}
}

// eulerCoefficients folds x0 = px·x + pm·m and the Euler update
// x' = x + (x − x0)/σ · (target − σ) into x' = ax·x + am·m.
func (e *eulerSchedule) eulerCoefficients(sigma, target float64) (ax, am float64) {
	px, pm := e.x0Coefficients(sigma)
	dt := target - sigma
	return 1 + dt*(1-px)/sigma, -dt * pm / sigma
}

// Euler is the deterministic Euler sampler (Karras et al. 2022, algorithm 2 with
// no churn), diffusers' EulerDiscreteScheduler.
type Euler struct {
	eulerSchedule
}

func newEuler(cfg Config, steps int, karras bool, pred prediction) (*Euler, error) {
	s, err := newEulerSchedule(cfg, cfg.Spacing(NameEuler), steps, karras, pred)
	if err != nil {
		return nil, err
	}
	return &Euler{s}, nil
}

// Name returns "euler".
func (e *Euler) Name() string { return NameEuler }

// NeedsNoise is false: the Euler sampler is deterministic.
func (e *Euler) NeedsNoise() bool { return false }

// Step applies x ← x + (x − x0)/σ_i · (σ_{i+1} − σ_i).
func (e *Euler) Step(step int, modelOutput, sample, noise []float32) error {
	if err := checkStep(NameEuler, step, e.steps, modelOutput, sample); err != nil {
		return err
	}
	ax, am := e.eulerCoefficients(e.sigmas[step], e.sigmas[step+1])
	axpy(sample, modelOutput, nil, float32(ax), float32(am), 0)
	return nil
}

// StepCoefficients implements Linear: Step is x ← a·x + b·modelOutput.
func (e *Euler) StepCoefficients(step int) (a, b, c float32, err error) {
	if step < 0 || step >= e.steps {
		return 0, 0, 0, fmt.Errorf("sched: %s: step %d out of range [0,%d)", NameEuler, step, e.steps)
	}
	ax, am := e.eulerCoefficients(e.sigmas[step], e.sigmas[step+1])
	return float32(ax), float32(am), 0, nil
}

// axpy sets x ← a·x + b·m + c·n (n may be nil when c is 0). The schedule maths is
// done in float64 once per step; the per-element update is float32, like the
// tensors, because it runs over every latent value each step.
func axpy(x, m, n []float32, a, b, c float32) {
	m = m[:len(x)]
	if n == nil || c == 0 {
		for i, v := range x {
			x[i] = a*v + b*m[i]
		}
		return
	}
	n = n[:len(x)]
	for i, v := range x {
		x[i] = a*v + b*m[i] + c*n[i]
	}
}

// EulerAncestral is the ancestral Euler sampler, diffusers'
// EulerAncestralDiscreteScheduler: each step goes deterministically down to
// σ_down and adds fresh noise of size σ_up, with σ_down² + σ_up² = σ_{i+1}².
// It always uses the spaced training sigmas (diffusers has no Karras option
// for it).
type EulerAncestral struct {
	eulerSchedule
}

func newEulerAncestral(cfg Config, steps int, pred prediction) (*EulerAncestral, error) {
	s, err := newEulerSchedule(cfg, cfg.Spacing(NameEulerAncestral), steps, false, pred)
	if err != nil {
		return nil, err
	}
	return &EulerAncestral{s}, nil
}

// Name returns "euler_a".
func (e *EulerAncestral) Name() string { return NameEulerAncestral }

// NeedsNoise is true unless the only step is the last one, which adds none.
func (e *EulerAncestral) NeedsNoise() bool { return e.steps > 1 }

func (e *EulerAncestral) upDown(step int) (up, down float64) {
	from, to := e.sigmas[step], e.sigmas[step+1]
	up = math.Sqrt(to * to * (from*from - to*to) / (from * from))
	down = math.Sqrt(math.Max(to*to-up*up, 0))
	return up, down
}

// StepCoefficients implements Linear: Step is x ← a·x + b·modelOutput + c·noise.
func (e *EulerAncestral) StepCoefficients(step int) (a, b, c float32, err error) {
	if step < 0 || step >= e.steps {
		return 0, 0, 0, fmt.Errorf("sched: %s: step %d out of range [0,%d)", NameEulerAncestral, step, e.steps)
	}
	up, down := e.upDown(step)
	ax, am := e.eulerCoefficients(e.sigmas[step], down)
	return float32(ax), float32(am), float32(up), nil
}

// Step applies x ← x + (x − x0)/σ_i · (σ_down − σ_i) + σ_up·noise.
func (e *EulerAncestral) Step(step int, modelOutput, sample, noise []float32) error {
	if err := checkStep(NameEulerAncestral, step, e.steps, modelOutput, sample); err != nil {
		return err
	}
	up, down := e.upDown(step)
	ax, am := e.eulerCoefficients(e.sigmas[step], down)
	if up == 0 {
		axpy(sample, modelOutput, nil, float32(ax), float32(am), 0)
		return nil
	}
	if err := checkNoise(NameEulerAncestral, noise, sample); err != nil {
		return fmt.Errorf("%w (step %d)", err, step)
	}
	axpy(sample, modelOutput, noise, float32(ax), float32(am), float32(up))
	return nil
}
