package sched

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// Config is the part of a diffusers scheduler_config.json that the schedulers in
// this package use. The JSON key of each field is in its comment.
//
// ParseConfig fills the diffusers defaults for keys that are absent or null.
// TimestepSpacing stays "" when the key is absent: diffusers then uses the
// default of the scheduler class that reads the config, which differs per class
// (see Spacing). ClipSample defaults to false, a deliberate choice, because
// clipping SD latents to [-1, 1] (DDIMScheduler's pixel-space default) ruins
// them; every SD config that names the key sets it false anyway.
type Config struct {
	ClassName         string    // "_class_name"
	NumTrainTimesteps int       // "num_train_timesteps", default 1000
	BetaStart         float64   // "beta_start", default 0.00085
	BetaEnd           float64   // "beta_end", default 0.012
	BetaSchedule      string    // "beta_schedule": "scaled_linear" (default), "linear", "squaredcos_cap_v2"
	TrainedBetas      []float64 // "trained_betas": when set, used instead of BetaSchedule
	TimestepSpacing   string    // "timestep_spacing": "leading", "trailing", "linspace", or "" when absent
	StepsOffset       int       // "steps_offset", default 0
	PredictionType    string    // "prediction_type": "epsilon" (default), "v_prediction", "sample"
	UseKarrasSigmas   bool      // "use_karras_sigmas"
	ClipSample        bool      // "clip_sample" (DDIM, LCM), default false
	ClipSampleRange   float64   // "clip_sample_range", default 1
	SetAlphaToOne     bool      // "set_alpha_to_one" (DDIM), default true

	// OriginalInferenceSteps is the LCM distillation schedule length
	// ("original_inference_steps", default 50).
	OriginalInferenceSteps int
	// TimestepScaling scales the timestep in LCM's boundary condition
	// ("timestep_scaling", default 10).
	TimestepScaling float64
}

// DefaultConfig returns the configuration of an empty scheduler_config.json,
// with the package's choices described on Config: the SD betas, and no
// timestep_spacing (each scheduler's class default).
func DefaultConfig() Config {
	return Config{
		NumTrainTimesteps:      1000,
		BetaStart:              0.00085,
		BetaEnd:                0.012,
		BetaSchedule:           "scaled_linear",
		PredictionType:         "epsilon",
		ClipSampleRange:        1,
		SetAlphaToOne:          true,
		OriginalInferenceSteps: 50,
		TimestepScaling:        10,
	}
}

// rawConfig mirrors the JSON with pointers so that an absent key and a JSON null
// both mean "use the default".
type rawConfig struct {
	ClassName              *string   `json:"_class_name"`
	NumTrainTimesteps      *int      `json:"num_train_timesteps"`
	BetaStart              *float64  `json:"beta_start"`
	BetaEnd                *float64  `json:"beta_end"`
	BetaSchedule           *string   `json:"beta_schedule"`
	TrainedBetas           []float64 `json:"trained_betas"`
	TimestepSpacing        *string   `json:"timestep_spacing"`
	StepsOffset            *int      `json:"steps_offset"`
	PredictionType         *string   `json:"prediction_type"`
	UseKarrasSigmas        *bool     `json:"use_karras_sigmas"`
	ClipSample             *bool     `json:"clip_sample"`
	ClipSampleRange        *float64  `json:"clip_sample_range"`
	SetAlphaToOne          *bool     `json:"set_alpha_to_one"`
	OriginalInferenceSteps *int      `json:"original_inference_steps"`
	TimestepScaling        *float64  `json:"timestep_scaling"`
	RescaleBetasZeroSNR    *bool     `json:"rescale_betas_zero_snr"`
	Thresholding           *bool     `json:"thresholding"`
}

// ParseConfig reads a diffusers scheduler_config.json. Unknown keys are ignored;
// absent or null keys take their defaults (see Config); values of the wrong JSON
// type, values out of range, and options this package does not implement are
// errors that name the key and the value.
func ParseConfig(data []byte) (Config, error) {
	var raw rawConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return Config{}, fmt.Errorf("sched: parse scheduler config: %w", err)
	}
	c := DefaultConfig()
	setIf(&c.ClassName, raw.ClassName)
	setIf(&c.NumTrainTimesteps, raw.NumTrainTimesteps)
	setIf(&c.BetaStart, raw.BetaStart)
	setIf(&c.BetaEnd, raw.BetaEnd)
	setIf(&c.BetaSchedule, raw.BetaSchedule)
	c.TrainedBetas = raw.TrainedBetas
	setIf(&c.TimestepSpacing, raw.TimestepSpacing)
	setIf(&c.StepsOffset, raw.StepsOffset)
	setIf(&c.PredictionType, raw.PredictionType)
	setIf(&c.UseKarrasSigmas, raw.UseKarrasSigmas)
	setIf(&c.ClipSample, raw.ClipSample)
	setIf(&c.ClipSampleRange, raw.ClipSampleRange)
	setIf(&c.SetAlphaToOne, raw.SetAlphaToOne)
	setIf(&c.OriginalInferenceSteps, raw.OriginalInferenceSteps)
	setIf(&c.TimestepScaling, raw.TimestepScaling)

	// These change the noise schedule or the prediction itself; silently ignoring
	// them would sample the model with the wrong maths.
	if raw.RescaleBetasZeroSNR != nil && *raw.RescaleBetasZeroSNR {
		return Config{}, fmt.Errorf("sched: rescale_betas_zero_snr=true is not supported")
	}
	if raw.Thresholding != nil && *raw.Thresholding {
		return Config{}, fmt.Errorf("sched: thresholding=true is not supported")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// LoadConfig reads and parses the scheduler_config.json at path.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("sched: read scheduler config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate reports the first field that no scheduler here can work with.
func (c Config) Validate() error {
	if c.NumTrainTimesteps < 2 {
		return fmt.Errorf("sched: num_train_timesteps must be at least 2, got %d", c.NumTrainTimesteps)
	}
	if c.TrainedBetas == nil {
		switch c.BetaSchedule {
		case "linear", "scaled_linear":
			if !(c.BetaStart > 0 && c.BetaStart < 1) {
				return fmt.Errorf("sched: beta_start must be in (0, 1), got %v", c.BetaStart)
			}
			if !(c.BetaEnd > 0 && c.BetaEnd < 1) {
				return fmt.Errorf("sched: beta_end must be in (0, 1), got %v", c.BetaEnd)
			}
		case "squaredcos_cap_v2":
		default:
			return fmt.Errorf("sched: unsupported beta_schedule %q (want scaled_linear, linear or squaredcos_cap_v2)", c.BetaSchedule)
		}
	} else {
		if len(c.TrainedBetas) != c.NumTrainTimesteps {
			return fmt.Errorf("sched: trained_betas has %d values, want num_train_timesteps=%d", len(c.TrainedBetas), c.NumTrainTimesteps)
		}
		for i, b := range c.TrainedBetas {
			if !(b > 0 && b < 1) {
				return fmt.Errorf("sched: trained_betas[%d] must be in (0, 1), got %v", i, b)
			}
		}
	}
	switch c.TimestepSpacing {
	case "", "leading", "trailing", "linspace":
	default:
		return fmt.Errorf("sched: unsupported timestep_spacing %q (want leading, trailing or linspace)", c.TimestepSpacing)
	}
	switch c.PredictionType {
	case "epsilon", "v_prediction", "sample":
	default:
		return fmt.Errorf("sched: unsupported prediction_type %q (want epsilon, v_prediction or sample)", c.PredictionType)
	}
	if c.StepsOffset < 0 || c.StepsOffset >= c.NumTrainTimesteps {
		return fmt.Errorf("sched: steps_offset must be in [0, %d), got %d", c.NumTrainTimesteps, c.StepsOffset)
	}
	if c.OriginalInferenceSteps < 1 || c.OriginalInferenceSteps > c.NumTrainTimesteps {
		return fmt.Errorf("sched: original_inference_steps must be in [1, %d], got %d", c.NumTrainTimesteps, c.OriginalInferenceSteps)
	}
	if !(c.TimestepScaling >= 0) || math.IsInf(c.TimestepScaling, 0) {
		return fmt.Errorf("sched: timestep_scaling must be a finite number >= 0, got %v", c.TimestepScaling)
	}
	if c.ClipSample && !(c.ClipSampleRange > 0) {
		return fmt.Errorf("sched: clip_sample_range must be > 0, got %v", c.ClipSampleRange)
	}
	return nil
}

// Spacing returns the timestep spacing the scheduler called name (one of
// Names, or "" for the config's own class) uses with this config: the config's
// timestep_spacing when it has one, else that diffusers class's own default —
// "linspace" for EulerDiscreteScheduler, EulerAncestralDiscreteScheduler and
// DPMSolverMultistepScheduler, "leading" for DDIMScheduler, LCMScheduler and
// PNDMScheduler. This is what <Class>.from_config(config) does in diffusers:
// SD 1.5's PNDM config has no timestep_spacing, so its own PNDM schedule is
// leading while Euler made from it is linspace.
func (c Config) Spacing(name string) string {
	if c.TimestepSpacing != "" {
		return c.TimestepSpacing
	}
	if name == "" {
		switch c.ClassName {
		case "DDIMScheduler", "LCMScheduler", "PNDMScheduler":
			return "leading"
		case "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler":
			return "linspace"
		}
		name, _ = fromClassName(c)
	}
	switch name {
	case NameDDIM, NameLCM:
		return "leading"
	}
	return "linspace"
}

// alphasCumprod returns ᾱ_t = ∏_{s≤t}(1-β_s) for t = 0..NumTrainTimesteps-1 as
// diffusers computes it: betas as a float32 tensor (torch.linspace in float32,
// squared in float32 for scaled_linear; the cosine schedule in float64, then
// cast), α = 1 − β in float32, and torch.cumprod, which accumulates in double
// and stores float32. The values are float32 numbers held in float64.
func (c Config) alphasCumprod() ([]float64, error) {
	n := c.NumTrainTimesteps
	betas := make([]float32, n)
	switch {
	case c.TrainedBetas != nil:
		for i, b := range c.TrainedBetas {
			betas[i] = float32(b)
		}
	case c.BetaSchedule == "linear":
		betas = torchLinspace32(c.BetaStart, c.BetaEnd, n)
	case c.BetaSchedule == "scaled_linear":
		betas = torchLinspace32(math.Sqrt(c.BetaStart), math.Sqrt(c.BetaEnd), n)
		for i, v := range betas {
			betas[i] = v * v
		}
	case c.BetaSchedule == "squaredcos_cap_v2":
		// Improved-DDPM cosine schedule, betas capped at 0.999 as in diffusers.
		alphaBar := func(t float64) float64 {
			v := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
			return v * v
		}
		for i := range betas {
			t1, t2 := float64(i)/float64(n), float64(i+1)/float64(n)
			betas[i] = float32(math.Min(1-alphaBar(t2)/alphaBar(t1), 0.999))
		}
	default:
		return nil, fmt.Errorf("sched: unsupported beta_schedule %q", c.BetaSchedule)
	}
	out := make([]float64, n)
	p := 1.0
	for i, b := range betas {
		p *= float64(1 - b)
		out[i] = f32(p)
	}
	if out[n-1] <= 0 {
		return nil, fmt.Errorf("sched: beta schedule %q drives alpha_cumprod to 0", c.BetaSchedule)
	}
	return out, nil
}
