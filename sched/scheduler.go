package sched

import (
	"fmt"
	"strings"
)

// Scheduler names accepted by New (and by diffute.InferenceRequest.Scheduler).
const (
	NameEuler          = "euler"
	NameEulerAncestral = "euler_a"
	NameDPMPP2M        = "dpmpp_2m"
	NameDPMPP2MKarras  = "dpmpp_2m_karras"
	NameDDIM           = "ddim"
	NameLCM            = "lcm"
)

// Names lists the scheduler names New accepts besides "".
var Names = []string{NameEuler, NameEulerAncestral, NameDPMPP2M, NameDPMPP2MKarras, NameDDIM, NameLCM}

// Scheduler drives one denoising run of a fixed number of steps. It is stateful
// and not safe for concurrent use: create one per generation.
//
// The engine loop is:
//
//	latents = N(0,1) · InitNoiseSigma()
//	for i, t := range Timesteps():
//	    out = UNet(latents · ScaleModelInput(i), t)   // guidance applied to out
//	    Step(i, out, latents, noise_i)                // noise_i only if NeedsNoise()
type Scheduler interface {
	// Name is the scheduler's name, one of Names.
	Name() string
	// Timesteps is the model timestep for each step, in order. Values may be
	// fractional (Euler with Karras sigmas or linspace spacing).
	Timesteps() []float64
	// Sigmas is the variance-exploding noise level before each step and after
	// the last (len(Timesteps())+1 values, the last 0) for the sigma-based
	// schedulers (euler, euler_a, dpmpp_2m*), nil for ddim and lcm.
	Sigmas() []float64
	// InitNoiseSigma is the factor for the initial N(0,1) latents.
	InitNoiseSigma() float64
	// ScaleModelInput is the factor applied to the latents before the UNet at
	// step (1/sqrt(σ²+1) for Euler, 1 for the others).
	ScaleModelInput(step int) float32
	// NeedsNoise reports whether Step wants fresh N(0,1) noise on some step.
	NeedsNoise() bool
	// Step advances sample in place from step to step+1 given the model output
	// (already guidance-combined). noise holds len(sample) N(0,1) values when
	// NeedsNoise, else nil; it is ignored on steps that add no noise (the
	// last). Step does not allocate once its buffers exist.
	Step(step int, modelOutput, sample, noise []float32) error
}

// Linear is implemented by schedulers whose step is the element-wise update
// x ← a·x + b·modelOutput + c·noise with constants per step, so that a caller can
// fold the step into its own pass over the latents (the engine does, with guidance
// and the next step's input scaling, to touch the latents once per step). The
// update must be done in float32 in exactly that order to match Step.
type Linear interface {
	StepCoefficients(step int) (a, b, c float32, err error)
}

// New builds the scheduler called name for steps inference steps.
//
// name "" picks the scheduler from cfg.ClassName: EulerDiscreteScheduler → euler
// (with Karras sigmas when cfg.UseKarrasSigmas), EulerAncestralDiscreteScheduler
// → euler_a, DPMSolverMultistepScheduler → dpmpp_2m, or dpmpp_2m_karras when
// cfg.UseKarrasSigmas, DDIMScheduler → ddim, LCMScheduler → lcm. Any other
// class (PNDMScheduler, LMSDiscreteScheduler, …) falls back to euler, which
// samples every epsilon/v model in the same noise schedule.
//
// An explicit name means exactly that algorithm: "euler" and "dpmpp_2m" use the
// spaced training sigmas even when cfg.UseKarrasSigmas is set, and
// "dpmpp_2m_karras" uses Karras sigmas either way.
func New(name string, cfg Config, steps int) (Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if steps < 1 {
		return nil, fmt.Errorf("sched: steps must be at least 1, got %d", steps)
	}
	if steps > cfg.NumTrainTimesteps {
		return nil, fmt.Errorf("sched: steps must be at most num_train_timesteps=%d, got %d", cfg.NumTrainTimesteps, steps)
	}
	// The spacing is resolved before the name: with name "" an absent
	// timestep_spacing takes the default of the config's own class.
	cfg.TimestepSpacing = cfg.Spacing(name)
	karras := false
	if name == "" {
		name, karras = fromClassName(cfg)
	}
	pred := predictionOf(cfg.PredictionType)
	switch name {
	case NameEuler:
		return newEuler(cfg, steps, karras, pred)
	case NameEulerAncestral:
		return newEulerAncestral(cfg, steps, pred)
	case NameDPMPP2M:
		return newDPMPP2M(cfg, steps, false, pred)
	case NameDPMPP2MKarras:
		return newDPMPP2M(cfg, steps, true, pred)
	case NameDDIM:
		return newDDIM(cfg, steps, pred)
	case NameLCM:
		return newLCM(cfg, steps, pred)
	}
	return nil, fmt.Errorf("sched: unknown scheduler %q (want one of %s)", name, strings.Join(Names, ", "))
}

// fromClassName maps a diffusers class to one of Names, and says whether an
// Euler schedule should use Karras sigmas.
func fromClassName(cfg Config) (string, bool) {
	switch cfg.ClassName {
	case "EulerAncestralDiscreteScheduler":
		return NameEulerAncestral, false
	case "DPMSolverMultistepScheduler":
		if cfg.UseKarrasSigmas {
			return NameDPMPP2MKarras, false
		}
		return NameDPMPP2M, false
	case "DDIMScheduler":
		return NameDDIM, false
	case "LCMScheduler":
		return NameLCM, false
	case "EulerDiscreteScheduler":
		return NameEuler, cfg.UseKarrasSigmas
	default:
		return NameEuler, false
	}
}

// prediction is what the model output means.
type prediction int

const (
	predictEpsilon prediction = iota // the noise ε
	predictV                         // v = α_t·ε − σ_t·x0
	predictSample                    // x0 itself
)

func predictionOf(s string) prediction {
	switch s {
	case "v_prediction":
		return predictV
	case "sample":
		return predictSample
	default:
		return predictEpsilon
	}
}

// x0Coefficients returns (px, pm) with x0 = px·x + pm·m for a variance-preserving
// sample x = √ᾱ·x0 + √(1−ᾱ)·ε and model output m.
func x0Coefficients(pred prediction, sqrtAlpha, sqrtBeta float64) (px, pm float64) {
	switch pred {
	case predictV:
		return sqrtAlpha, -sqrtBeta
	case predictSample:
		return 0, 1
	default:
		return 1 / sqrtAlpha, -sqrtBeta / sqrtAlpha
	}
}
