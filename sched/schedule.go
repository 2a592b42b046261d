package sched

import (
	"fmt"
	"math"
)

// This file holds the schedule maths shared by the schedulers: timestep spacing,
// training sigmas, interpolation and the Karras et al. (2022) sigma ramp. The
// numpy details diffusers relies on are kept on purpose (round half to even,
// np.interp on the integer training grid) so the timesteps match exactly.

// spacedTimesteps returns `steps` descending timesteps in [0, N) for the
// leading/trailing/linspace spacings as DDIM and Euler define them; linspace
// values are left fractional (Euler keeps them, DDIM rounds them).
func spacedTimesteps(c Config, steps int) ([]float64, error) {
	n := c.NumTrainTimesteps
	out := make([]float64, steps)
	switch c.TimestepSpacing {
	case "linspace":
		for i := range out {
			out[i] = lerpIndex(0, float64(n-1), steps-1-i, steps)
		}
	case "leading":
		ratio := n / steps
		for i := range out {
			out[i] = float64((steps-1-i)*ratio + c.StepsOffset)
		}
	case "trailing":
		ratio := float64(n) / float64(steps)
		for i := range out {
			out[i] = math.RoundToEven(float64(n)-float64(i)*ratio) - 1
		}
	default:
		return nil, fmt.Errorf("sched: unsupported timestep_spacing %q", c.TimestepSpacing)
	}
	return out, nil
}

// trainSigmas converts ᾱ_t to the variance-exploding noise level
// σ_t = sqrt((1-ᾱ_t)/ᾱ_t).
func trainSigmas(ac []float64) []float64 {
	out := make([]float64, len(ac))
	for i, a := range ac {
		out[i] = math.Sqrt((1 - a) / a)
	}
	return out
}

// interpGrid evaluates np.interp(x, arange(len(f)), f).
func interpGrid(x float64, f []float64) float64 {
	if x <= 0 {
		return f[0]
	}
	last := len(f) - 1
	if x >= float64(last) {
		return f[last]
	}
	i := int(math.Floor(x))
	w := x - float64(i)
	return f[i] + w*(f[i+1]-f[i])
}

// karrasSigmas is the rho=7 ramp from sigmaMax down to sigmaMin in `steps`
// values (Karras et al. 2022, eq. 5).
func karrasSigmas(sigmaMax, sigmaMin float64, steps int) []float64 {
	const rho = 7.0
	lo, hi := math.Pow(sigmaMin, 1/rho), math.Pow(sigmaMax, 1/rho)
	out := make([]float64, steps)
	for i := range out {
		out[i] = math.Pow(hi+lerpIndex(0, 1, i, steps)*(lo-hi), rho)
	}
	return out
}

// sigmaToT maps a noise level back to a (fractional) training timestep by
// interpolating in log-sigma between the two bracketing training sigmas.
// logSigmas must be ascending, as the training sigmas are.
func sigmaToT(sigma float64, logSigmas []float64) float64 {
	ls := math.Log(math.Max(sigma, 1e-10))
	low := 0
	for i, v := range logSigmas {
		if ls >= v {
			low = i
		}
	}
	low = min(low, len(logSigmas)-2)
	lo, hi := logSigmas[low], logSigmas[low+1]
	w := (lo - ls) / (lo - hi)
	w = math.Min(math.Max(w, 0), 1)
	return (1-w)*float64(low) + w*float64(low+1)
}

func logs(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Log(x)
	}
	return out
}

// vpCoefficients turns a variance-exploding sigma into the variance-preserving
// pair (α_t, σ_t) with x_vp = α_t·x0 + σ_t·ε.
func vpCoefficients(sigma float64) (alpha, sigmaT float64) {
	alpha = 1 / math.Sqrt(sigma*sigma+1)
	return alpha, sigma * alpha
}

func checkStep(name string, step, steps int, modelOutput, sample []float32) error {
	if step < 0 || step >= steps {
		return fmt.Errorf("sched: %s: step %d out of range [0, %d)", name, step, steps)
	}
	if len(modelOutput) != len(sample) {
		return fmt.Errorf("sched: %s: model output has %d values, sample has %d", name, len(modelOutput), len(sample))
	}
	return nil
}

func checkNoise(name string, noise, sample []float32) error {
	if len(noise) != len(sample) {
		return fmt.Errorf("sched: %s: step needs %d noise values, got %d", name, len(sample), len(noise))
	}
	return nil
}
