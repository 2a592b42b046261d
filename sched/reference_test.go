package sched

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// reference.json is produced by testdata/gen_reference.py, a separate plain-Python
// transcription of the diffusers formulas (see testdata/README.md).
type referenceFile struct {
	Tables []referenceTable `json:"tables"`
	Steps  []referenceStep  `json:"steps"`
}

type referenceTable struct {
	Name              string          `json:"name"`
	Scheduler         string          `json:"scheduler"`
	Karras            bool            `json:"karras"`
	Config            json.RawMessage `json:"config"`
	Steps             int             `json:"steps"`
	Timesteps         []float64       `json:"timesteps"`
	Sigmas            []float64       `json:"sigmas"`
	InitNoiseSigma    float64         `json:"init_noise_sigma"`
	AlphasCumprod     []float64       `json:"alphas_cumprod"`
	AlphasCumprodPrev []float64       `json:"alphas_cumprod_prev"`
}

type referenceStep struct {
	Name         string          `json:"name"`
	Scheduler    string          `json:"scheduler"`
	Config       json.RawMessage `json:"config"`
	Steps        int             `json:"steps"`
	Step         int             `json:"step"`
	Sample       []float32       `json:"sample"`
	ModelOutput  []float32       `json:"model_output"`
	ModelOutputs [][]float32     `json:"model_outputs"`
	Noise        []float32       `json:"noise"`
	Want         []float64       `json:"want"`
	Wants        [][]float64     `json:"wants"`
}

func loadReference(t *testing.T) referenceFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "reference.json"))
	if err != nil {
		t.Fatalf("read reference (regenerate with python3 sched/testdata/gen_reference.py): %v", err)
	}
	var ref referenceFile
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatalf("decode reference: %v", err)
	}
	if len(ref.Tables) == 0 || len(ref.Steps) == 0 {
		t.Fatal("reference.json has no cases")
	}
	return ref
}

// closeRel reports whether got is within rel of want, relative to |want|, with
// an absolute floor for values near zero.
func closeRel(got, want, rel float64) bool {
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1e-3)
}

func assertSeries(t *testing.T, what string, got, want []float64, rel float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range want {
		if !closeRel(got[i], want[i], rel) {
			t.Errorf("%s[%d] = %.6f, want %.6f", what, i, got[i], want[i])
		}
	}
}

func TestReferenceTables(t *testing.T) {
	t.Parallel()
	for _, tc := range loadReference(t).Tables {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseConfig(tc.Config)
			if err != nil {
				t.Fatal(err)
			}
			name := tc.Scheduler
			if name == NameEuler && tc.Karras {
				// Euler takes Karras sigmas only from the model's own config.
				name, cfg.ClassName, cfg.UseKarrasSigmas = "", "EulerDiscreteScheduler", true
			}
			s, err := New(name, cfg, tc.Steps)
			if err != nil {
				t.Fatal(err)
			}
			assertSeries(t, "timesteps", s.Timesteps(), tc.Timesteps, 1e-4)
			if tc.Sigmas != nil {
				assertSeries(t, "sigmas", s.Sigmas(), tc.Sigmas, 1e-4)
			} else if s.Sigmas() != nil {
				t.Errorf("Sigmas() = %v, want nil for %s", s.Sigmas(), s.Name())
			}
			if !closeRel(s.InitNoiseSigma(), tc.InitNoiseSigma, 1e-4) {
				t.Errorf("InitNoiseSigma = %v, want %v", s.InitNoiseSigma(), tc.InitNoiseSigma)
			}
			if tc.AlphasCumprod != nil {
				d := s.(*DDIM)
				assertSeries(t, "alphas_cumprod", d.alphas, tc.AlphasCumprod, 1e-4)
				assertSeries(t, "alphas_cumprod_prev", d.alphasPrev, tc.AlphasCumprodPrev, 1e-4)
			}
		})
	}
}

func TestReferenceSteps(t *testing.T) {
	t.Parallel()
	for _, tc := range loadReference(t).Steps {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			cfg, err := ParseConfig(tc.Config)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(tc.Scheduler, cfg, tc.Steps)
			if err != nil {
				t.Fatal(err)
			}
			sample := append([]float32(nil), tc.Sample...)
			if tc.Wants != nil {
				// Multistep run: every step from 0, checking each result.
				for i, m := range tc.ModelOutputs {
					if err := s.Step(i, m, sample, nil); err != nil {
						t.Fatal(err)
					}
					assertSeries(t, fmt.Sprintf("after step %d", i), float64s(sample), tc.Wants[i], 1e-5)
				}
				return
			}
			if err := s.Step(tc.Step, tc.ModelOutput, sample, tc.Noise); err != nil {
				t.Fatal(err)
			}
			assertSeries(t, "sample", float64s(sample), tc.Want, 1e-5)
		})
	}
}

func float64s(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}
