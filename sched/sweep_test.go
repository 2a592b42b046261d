package sched

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// reference_sweep.json (testdata/gen_reference.py) holds every step count
// 1–100 (LCM 1–50) for each scheduler and spacing, transcribed from diffusers'
// numpy and torch code in plain Python. Timesteps must be equal; sigmas and ᾱ,
// float32 in diffusers, must be the same float32.
func TestReferenceSweep(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("testdata", "reference_sweep.json"))
	if err != nil {
		t.Fatalf("read sweep (regenerate with python3 sched/testdata/gen_reference.py): %v", err)
	}
	var ref struct {
		Sweep []struct {
			Scheduler string          `json:"scheduler"`
			Config    json.RawMessage `json:"config"`
			Rows      []struct {
				Steps             int       `json:"steps"`
				Timesteps         []float64 `json:"timesteps"`
				Sigmas            []float64 `json:"sigmas"`
				InitNoiseSigma    float64   `json:"init_noise_sigma"`
				AlphasCumprod     []float64 `json:"alphas_cumprod"`
				AlphasCumprodPrev []float64 `json:"alphas_cumprod_prev"`
			} `json:"rows"`
		} `json:"sweep"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Sweep) != 19 {
		t.Fatalf("sweep has %d scheduler/spacing sets, want 19", len(ref.Sweep))
	}
	for _, set := range ref.Sweep {
		cfg, err := ParseConfig(set.Config)
		if err != nil {
			t.Fatal(err)
		}
		name := set.Scheduler
		if name == "euler_karras" {
			// Euler takes Karras sigmas only from the model's own config.
			name, cfg.ClassName, cfg.UseKarrasSigmas = "", "EulerDiscreteScheduler", true
		}
		t.Run(set.Scheduler+"/"+cfg.TimestepSpacing, func(t *testing.T) {
			t.Parallel()
			for _, row := range set.Rows {
				s, err := New(name, cfg, row.Steps)
				if err != nil {
					t.Fatalf("%d steps: %v", row.Steps, err)
				}
				what := fmt.Sprintf("%d steps: ", row.Steps)
				assertSeries32(t, what+"timesteps", s.Timesteps(), row.Timesteps)
				if row.Sigmas != nil {
					assertSeries32(t, what+"sigmas", s.Sigmas(), row.Sigmas)
				}
				assertSeries32(t, what+"init_noise_sigma", []float64{s.InitNoiseSigma()}, []float64{row.InitNoiseSigma})
				if row.AlphasCumprod != nil {
					d := s.(*DDIM)
					assertSeries32(t, what+"alphas_cumprod", d.alphas, row.AlphasCumprod)
					assertSeries32(t, what+"alphas_cumprod_prev", d.alphasPrev, row.AlphasCumprodPrev)
				}
			}
		})
	}
}

// assertSeries32 requires the same float32 values.
func assertSeries32(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d values, want %d\n got %v\nwant %v", what, len(got), len(want), got, want)
		return
	}
	for i := range want {
		if float32(got[i]) != float32(want[i]) {
			t.Errorf("%s[%d] = %.9g, want %.9g", what, i, got[i], want[i])
		}
	}
}
