package sched

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadConfigRealFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file      string
		class     string
		spacing   string
		offset    int
		wantName  string
		steps     int
		wantFirst []float64
	}{
		// SD 1.5 ships a PNDM config without timestep_spacing: its own class
		// (PNDM) defaults to leading, offset 1.
		{"sd15_pndm.json", "PNDMScheduler", "", 1, NameEuler, 30, []float64{958, 925, 892}},
		{"sdxl_base_euler.json", "EulerDiscreteScheduler", "leading", 1, NameEuler, 50, []float64{981, 961, 941}},
		{"sdxl_turbo_euler_a.json", "EulerAncestralDiscreteScheduler", "trailing", 1, NameEulerAncestral, 4, []float64{999, 749, 499, 249}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			cfg, err := LoadConfig(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ClassName != tc.class || cfg.TimestepSpacing != tc.spacing || cfg.StepsOffset != tc.offset {
				t.Errorf("class/spacing/offset = %q/%q/%d, want %q/%q/%d",
					cfg.ClassName, cfg.TimestepSpacing, cfg.StepsOffset, tc.class, tc.spacing, tc.offset)
			}
			if cfg.NumTrainTimesteps != 1000 || cfg.BetaStart != 0.00085 || cfg.BetaEnd != 0.012 ||
				cfg.BetaSchedule != "scaled_linear" || cfg.PredictionType != "epsilon" || cfg.TrainedBetas != nil {
				t.Errorf("unexpected schedule fields: %+v", cfg)
			}
			if cfg.SetAlphaToOne || cfg.ClipSample {
				t.Errorf("set_alpha_to_one/clip_sample = %v/%v, want false/false", cfg.SetAlphaToOne, cfg.ClipSample)
			}
			s, err := New("", cfg, tc.steps)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name() != tc.wantName {
				t.Errorf("New(\"\") picked %q, want %q", s.Name(), tc.wantName)
			}
			assertSeries(t, "timesteps", s.Timesteps()[:len(tc.wantFirst)], tc.wantFirst, 0)
		})
	}
}

// A key absent from scheduler_config.json takes the default of the class that
// reads it (diffusers' <Class>.from_config): SD 1.5's PNDM config has no
// timestep_spacing, so its own schedule is leading but Euler and DPM++ made
// from it are linspace, and DDIM and LCM leading.
func TestSpacingClassDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(filepath.Join("testdata", "sd15_pndm.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"": "leading", NameEuler: "linspace", NameEulerAncestral: "linspace",
		NameDPMPP2M: "linspace", NameDPMPP2MKarras: "linspace", NameDDIM: "leading", NameLCM: "leading",
	}
	for name, w := range want {
		if got := cfg.Spacing(name); got != w {
			t.Errorf("Spacing(%q) = %q, want %q", name, got, w)
		}
	}
	// Euler 4 steps on SD 1.5: diffusers gives 999, 666, 333, 0.
	s, err := New(NameEuler, cfg, 4)
	if err != nil {
		t.Fatal(err)
	}
	assertSeries(t, "euler timesteps", s.Timesteps(), []float64{999, 666, 333, 0}, 0)
	// An explicit key wins for every class.
	cfg.TimestepSpacing = "trailing"
	for name := range want {
		if got := cfg.Spacing(name); got != "trailing" {
			t.Errorf("with timestep_spacing trailing, Spacing(%q) = %q", name, got)
		}
	}
	// A class read from the config picks its own default.
	for class, w := range map[string]string{"EulerDiscreteScheduler": "linspace", "DDIMScheduler": "leading",
		"DPMSolverMultistepScheduler": "linspace", "LCMScheduler": "leading", "EulerAncestralDiscreteScheduler": "linspace"} {
		c := Config{ClassName: class}
		if got := c.Spacing(""); got != w {
			t.Errorf("%s: Spacing(\"\") = %q, want %q", class, got, w)
		}
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "scheduler_config.json")
	if _, err := LoadConfig(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadConfig(missing) = %v, want a not-exist error", err)
	}
	if err := os.WriteFile(path, []byte(`{"timestep_spacing": "sideways"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "sideways") {
		t.Fatalf("LoadConfig(bad) = %v, want an error naming the file and the value", err)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{}`, `{"prediction_type": null, "timestep_spacing": null, "trained_betas": null, "unknown_key": [1, 2]}`} {
		cfg, err := ParseConfig([]byte(in))
		if err != nil {
			t.Fatalf("ParseConfig(%s): %v", in, err)
		}
		if !reflect.DeepEqual(cfg, DefaultConfig()) {
			t.Errorf("ParseConfig(%s) = %+v, want defaults %+v", in, cfg, DefaultConfig())
		}
	}
	cfg, err := ParseConfig([]byte(`{"_class_name": "LCMScheduler", "prediction_type": "v_prediction",
		"use_karras_sigmas": true, "original_inference_steps": 100, "timestep_scaling": 1.5,
		"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "clip_sample": true, "clip_sample_range": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.ClassName, want.PredictionType, want.UseKarrasSigmas = "LCMScheduler", "v_prediction", true
	want.OriginalInferenceSteps, want.TimestepScaling = 100, 1.5
	want.BetaSchedule, want.BetaStart, want.BetaEnd = "linear", 0.0001, 0.02
	want.ClipSample, want.ClipSampleRange = true, 2
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("ParseConfig = %+v, want %+v", cfg, want)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
	}{
		{`not json`, "parse scheduler config"},
		{`{"timestep_spacing": "sideways"}`, `"sideways"`},
		{`{"prediction_type": "x0"}`, `"x0"`},
		{`{"beta_schedule": "cosine"}`, `"cosine"`},
		{`{"num_train_timesteps": "many"}`, "num_train_timesteps"},
		{`{"num_train_timesteps": 1}`, "num_train_timesteps must be at least 2, got 1"},
		{`{"beta_start": 0}`, "beta_start must be in (0, 1), got 0"},
		{`{"beta_end": 1.5}`, "beta_end must be in (0, 1), got 1.5"},
		{`{"steps_offset": -1}`, "steps_offset must be in [0, 1000), got -1"},
		{`{"trained_betas": [0.1, 0.2]}`, "trained_betas has 2 values"},
		{`{"original_inference_steps": 0}`, "original_inference_steps must be in [1, 1000], got 0"},
		{`{"timestep_scaling": -1}`, "timestep_scaling must be a finite number >= 0, got -1"},
		{`{"rescale_betas_zero_snr": true}`, "rescale_betas_zero_snr=true is not supported"},
		{`{"thresholding": true}`, "thresholding=true is not supported"},
	}
	for _, tc := range tests {
		_, err := ParseConfig([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConfig(%s) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestSquaredCosineAndTrainedBetas(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.BetaSchedule = "squaredcos_cap_v2"
	ac, err := cfg.alphasCumprod()
	if err != nil {
		t.Fatal(err)
	}
	// ᾱ_t ≈ f(t+1)/f(0) with f(t) = cos²((t/N + 0.008)/1.008 · π/2); early on the
	// 0.999 cap is not hit, so the product telescopes to exactly that ratio.
	f := func(x float64) float64 { c := cosHalfPi((x + 0.008) / 1.008); return c * c }
	for _, i := range []int{0, 10, 500} {
		want := f(float64(i+1)/1000) / f(0)
		// diffusers holds the betas and ᾱ in float32.
		if !closeRel(ac[i], want, 1e-6) {
			t.Errorf("alphas_cumprod[%d] = %v, want %v", i, ac[i], want)
		}
	}
	cfg = DefaultConfig()
	cfg.NumTrainTimesteps = 4
	cfg.TrainedBetas = []float64{0.1, 0.2, 0.3, 0.4}
	ac, err = cfg.alphasCumprod()
	if err != nil {
		t.Fatal(err)
	}
	assertSeries(t, "trained alphas_cumprod", ac, []float64{0.9, 0.72, 0.504, 0.3024}, 1e-7)
}

func cosHalfPi(x float64) float64 { return math.Cos(x * math.Pi / 2) }
