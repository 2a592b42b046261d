package sched

import (
	"fmt"
	"math"
)

// This file holds the schedule maths shared by the schedulers: timestep spacing,
// training sigmas, interpolation and the Karras et al. (2022) sigma ramp.
//
// diffusers computes these with torch float32 tensors (betas, ᾱ, the training
// sigmas) and numpy float64 arrays (timesteps, interpolation, Karras ramp), and
// where a value is rounded (np.round, a cast to float32, floor) a difference in
// the last bit changes the schedule. So the operations here are numpy's and
// torch's own, in their order and precision: np.linspace is i·step + start with
// the last value set to stop; np.arange with a float step is start + i·delta
// where delta = (start + step) − start; torch.linspace in float32 runs from both
// ends; torch.cumprod accumulates in double. Products are wrapped in explicit
// float64/float32 conversions so that no compiler fuses them into an FMA.

// f32 rounds x to float32 (a numpy .astype(np.float32) or a torch float32 tensor).
func f32(x float64) float64 { return float64(float32(x)) }

// npLinspace is numpy.linspace(start, stop, num, endpoint=endpoint) in float64.
func npLinspace(start, stop float64, num int, endpoint bool) []float64 {
	out := make([]float64, num)
	div := num
	if endpoint {
		div = num - 1
	}
	delta := stop - start
	if div <= 0 {
		// numpy multiplies by delta (step is NaN and unused); i = 0 only.
		for i := range out {
			out[i] = float64(float64(i)*delta) + start
		}
		return out
	}
	step := delta / float64(div)
	for i := range out {
		if step == 0 {
			out[i] = float64(float64(i)/float64(div)*delta) + start
		} else {
			out[i] = float64(float64(i)*step) + start
		}
	}
	if endpoint && num > 1 {
		out[num-1] = stop
	}
	return out
}

// npArange is numpy.arange(start, stop, step) in float64: ceil((stop−start)/step)
// values; numpy fills them as start + i·delta with delta = (start+step) − start,
// which is not always step (1000 − 1000/48 loses bits), so trailing spacing at
// 48 or 96 steps rounds differently from start + i·step, and at 61 steps the
// length is 62.
func npArange(start, stop, step float64) []float64 {
	n := int(math.Ceil((stop - start) / step))
	if n <= 0 {
		return nil
	}
	out := make([]float64, n)
	out[0] = start
	if n > 1 {
		out[1] = start + step
		delta := out[1] - start
		for i := 2; i < n; i++ {
			out[i] = start + float64(float64(i)*delta)
		}
	}
	return out
}

// torchLinspace32 is torch.linspace(start, end, n, dtype=torch.float32) on the
// CPU (torch ≥ 2.1's scalar kernel): start and end rounded to float32, a float32
// step, the first half counted up from start and the second down from end.
func torchLinspace32(start, end float64, n int) []float32 {
	s, e := float32(start), float32(end)
	out := make([]float32, n)
	if n == 1 {
		out[0] = s
		return out
	}
	step := (e - s) / float32(n-1)
	half := n / 2
	for i := range out {
		if i < half {
			out[i] = s + float32(step*float32(i))
		} else {
			out[i] = e - float32(step*float32(n-i-1))
		}
	}
	return out
}

// trainSigmas is diffusers' ((1 − ᾱ)/ᾱ) ** 0.5 on the float32 ᾱ tensor, each
// operation rounded to float32.
func trainSigmas(ac []float64) []float64 {
	out := make([]float64, len(ac))
	for i, a := range ac {
		a32 := float32(a)
		q := (1 - a32) / a32
		out[i] = f32(math.Sqrt(float64(q)))
	}
	return out
}

// logSigmas is np.log of the float32 training sigmas: a float32 array. (numpy's
// SIMD float32 log is not always correctly rounded; this is. See the package
// README in testdata for what that can change.)
func logSigmas(sigmas []float64) []float64 {
	out := make([]float64, len(sigmas))
	for i, s := range sigmas {
		out[i] = f32(math.Log(s))
	}
	return out
}

// interpGrid evaluates np.interp(x, arange(len(f)), f): slope·(x − j) + f[j].
func interpGrid(x float64, f []float64) float64 {
	last := len(f) - 1
	switch {
	case math.IsNaN(x):
		return x
	case x <= 0:
		return f[0]
	case x >= float64(last):
		return f[last]
	}
	j := int(math.Floor(x))
	if float64(j) == x {
		return f[j]
	}
	slope := f[j+1] - f[j]
	return float64(slope*(x-float64(j))) + f[j]
}

// karrasSigmas is diffusers' _convert_to_karras: the rho=7 ramp from sigmaMax
// down to sigmaMin in `steps` values (Karras et al. 2022, eq. 5), in float64.
func karrasSigmas(sigmaMax, sigmaMin float64, steps int) []float64 {
	const rho = 7.0
	ramp := npLinspace(0, 1, steps, true)
	minInv, maxInv := math.Pow(sigmaMin, 1/rho), math.Pow(sigmaMax, 1/rho)
	out := make([]float64, steps)
	for i, r := range ramp {
		out[i] = math.Pow(maxInv+float64(r*(minInv-maxInv)), rho)
	}
	return out
}

// sigmaToT is diffusers' _sigma_to_t for one sigma (float64) against the float32
// log training sigmas, with numpy 1.x's casting: the float64 scalar log σ meets
// float32 arrays, so the distances and the interpolation weight are float32;
// the final blend with the int64 indices is float64.
func sigmaToT(sigma float64, logSigmas []float64) float64 {
	ls := math.Log(math.Max(sigma, 1e-10))
	ls32 := float32(ls)
	low := -1
	for i, v := range logSigmas {
		if ls32-float32(v) >= 0 {
			low = i
		}
	}
	// cumsum(dists >= 0).argmax() is the last such index, or 0 when none.
	low = max(low, 0)
	low = min(low, len(logSigmas)-2)
	lo, hi := float32(logSigmas[low]), float32(logSigmas[low+1])
	w := (lo - ls32) / (lo - hi)
	w = min(max(w, 0), 1)
	return float64(float64(1-w)*float64(low)) + float64(float64(w)*float64(low+1))
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

// spacedTimesteps returns the descending timesteps of Euler, Euler ancestral
// and DDIM for a resolved spacing, as diffusers' set_timesteps builds them
// before any cast: linspace values are fractional (Euler casts them to float32,
// DDIM rounds them), leading and trailing are integers. Trailing spacing can
// give one more timestep than steps (numpy's arange at 61 steps).
func spacedTimesteps(c Config, spacing string, steps int) ([]float64, error) {
	n := c.NumTrainTimesteps
	switch spacing {
	case "linspace":
		ts := npLinspace(0, float64(n-1), steps, true)
		reverse(ts)
		return ts, nil
	case "leading":
		ratio := n / steps
		ts := make([]float64, steps)
		for i := range ts {
			ts[i] = float64((steps-1-i)*ratio + c.StepsOffset)
		}
		return ts, nil
	case "trailing":
		ts := npArange(float64(n), 0, -float64(n)/float64(steps))
		for i, t := range ts {
			ts[i] = math.RoundToEven(t) - 1
		}
		return ts, nil
	}
	return nil, fmt.Errorf("sched: unsupported timestep_spacing %q", spacing)
}

func reverse(xs []float64) {
	for i, j := 0, len(xs)-1; i < j; i, j = i+1, j-1 {
		xs[i], xs[j] = xs[j], xs[i]
	}
}
