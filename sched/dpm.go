package sched

import (
	"fmt"
	"math"
)

// DPMPP2M is DPM-Solver++(2M) (Lu et al. 2022), diffusers'
// DPMSolverMultistepScheduler with algorithm_type "dpmsolver++", solver_order 2,
// solver_type "midpoint" and a final sigma of zero: the first and the last step
// are first-order (the last lands exactly on the predicted x0), the others use
// the previous step's x0 prediction as a second-order correction.
//
// It works on the variance-preserving latents, so InitNoiseSigma and
// ScaleModelInput are 1.
type DPMPP2M struct {
	steps     int
	karras    bool
	pred      prediction
	timesteps []float64
	sigmas    []float64

	next   int       // the step Step expects next; the solver is multistep
	prevX0 []float32 // the previous step's x0 prediction
}

func newDPMPP2M(cfg Config, steps int, karras bool, pred prediction) (*DPMPP2M, error) {
	ac, err := cfg.alphasCumprod()
	if err != nil {
		return nil, err
	}
	train := trainSigmas(ac)
	n := cfg.NumTrainTimesteps
	// DPM-Solver spaces steps+1 points and drops the one at t≈0, so its
	// leading and linspace schedules differ from Euler's and DDIM's.
	// (lambda_min_clipped is -inf, so diffusers' last_timestep is n.)
	var ts []float64
	switch spacing := cfg.Spacing(NameDPMPP2M); spacing {
	case "linspace":
		all := npLinspace(0, float64(n-1), steps+1, true)
		ts = make([]float64, steps)
		for i := range ts {
			ts[i] = math.RoundToEven(all[steps-i])
		}
	case "leading":
		ratio := n / (steps + 1)
		ts = make([]float64, steps)
		for i := range ts {
			ts[i] = float64((steps-i)*ratio + cfg.StepsOffset)
		}
	default:
		if ts, err = spacedTimesteps(cfg, spacing, steps); err != nil {
			return nil, err
		}
	}
	var sig []float64
	if karras {
		// The ramp spans the full training range and the timesteps are the
		// nearest integer to each sigma's place on the training grid.
		sig = karrasSigmas(train[n-1], train[0], steps)
		ls := logSigmas(train)
		ts = make([]float64, steps)
		for i, s := range sig {
			ts[i] = math.RoundToEven(sigmaToT(s, ls))
		}
	} else {
		sig = make([]float64, len(ts))
		for i, t := range ts {
			sig[i] = interpGrid(t, train)
		}
	}
	sig = append(append(make([]float64, 0, len(sig)+1), sig...), 0) // the final zero sigma
	for i := range sig {
		sig[i] = f32(sig[i])
	}
	steps = len(ts)
	return &DPMPP2M{steps: steps, karras: karras, pred: pred, timesteps: ts, sigmas: sig}, nil
}

// Name returns "dpmpp_2m" or "dpmpp_2m_karras".
func (d *DPMPP2M) Name() string {
	if d.karras {
		return NameDPMPP2MKarras
	}
	return NameDPMPP2M
}

// Timesteps returns the integer model timesteps, as float64.
func (d *DPMPP2M) Timesteps() []float64 { return d.timesteps }

// Sigmas returns the σ schedule, ending with 0.
func (d *DPMPP2M) Sigmas() []float64 { return d.sigmas }

// InitNoiseSigma is 1: the solver works on variance-preserving latents.
func (d *DPMPP2M) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput is 1: the latents are already variance-preserving.
func (d *DPMPP2M) ScaleModelInput(int) float32 { return 1 }

// NeedsNoise is false: DPM-Solver++(2M) is deterministic.
func (d *DPMPP2M) NeedsNoise() bool { return false }

// Step must be called for steps 0, 1, 2, … in order, because each update uses
// the previous step's x0 prediction.
func (d *DPMPP2M) Step(step int, modelOutput, sample, noise []float32) error {
	name := d.Name()
	if err := checkStep(name, step, d.steps, modelOutput, sample); err != nil {
		return err
	}
	if step != d.next {
		return fmt.Errorf("sched: %s: step %d called out of order, want step %d", name, step, d.next)
	}
	if d.prevX0 == nil {
		d.prevX0 = make([]float32, len(sample))
	} else if len(d.prevX0) != len(sample) {
		return fmt.Errorf("sched: %s: sample has %d values, earlier steps had %d", name, len(sample), len(d.prevX0))
	}

	sigS, sigT := d.sigmas[step], d.sigmas[step+1]
	alphaS, sigmaS := vpCoefficients(sigS)
	px, pm := x0Coefficients(d.pred, alphaS, sigmaS)

	// x' = cx·x + c0·x0 + c1·x0_prev.
	var cx, c0, c1 float64
	switch sigT {
	case 0:
		// λ_t = +∞: the first-order update reduces to x' = x0.
		c0 = 1
	default:
		alphaT, sigmaT := vpCoefficients(sigT)
		lambdaT := math.Log(alphaT) - math.Log(sigmaT)
		lambdaS := math.Log(alphaS) - math.Log(sigmaS)
		h := lambdaT - lambdaS
		phi := -alphaT * math.Expm1(-h) // −α_t(e^{−h} − 1)
		cx = sigmaT / sigmaS
		c0 = phi
		if step > 0 && step < d.steps-1 {
			alphaP, sigmaP := vpCoefficients(d.sigmas[step-1])
			lambdaP := math.Log(alphaP) - math.Log(sigmaP)
			r0 := (lambdaS - lambdaP) / h
			// Midpoint: D1 = (x0 − x0_prev)/r0 enters with weight phi/2.
			c0 = phi * (1 + 0.5/r0)
			c1 = -phi * 0.5 / r0
		}
	}
	prev := d.prevX0
	for i, x := range sample {
		xv := float64(x)
		x0 := px*xv + pm*float64(modelOutput[i])
		sample[i] = float32(cx*xv + c0*x0 + c1*float64(prev[i]))
		prev[i] = float32(x0)
	}
	d.next++
	return nil
}
