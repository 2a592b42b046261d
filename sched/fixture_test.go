package sched

import (
	"encoding/json"
	"github.com/diffute/diffute/internal/fixtures"
	"math"
	"os"
	"slices"
	"testing"
)

type pipelineRun struct {
	ID             string          `json:"id"`
	Steps          int             `json:"num_inference_steps"`
	SchedulerClass string          `json:"scheduler_class"`
	Config         json.RawMessage `json:"scheduler_config"`
	Timesteps      []float64       `json:"timesteps"`
	Sigmas         []float64       `json:"sigmas"`
	InitNoiseSigma float64         `json:"init_noise_sigma"`
	UNetTimesteps  []float64       `json:"unet_timesteps"`
}

// TestFixturePipelineRuns rebuilds the schedule of every pipeline run that
// diffusers 0.27.2 recorded in the fixtures (<Class>.from_config of each
// checkpoint's published scheduler_config.json) from that same config file
// and the runtime scheduler Diffute maps the class to, and compares the
// timesteps, the timesteps passed to the UNet, the sigmas and
// init_noise_sigma. Timesteps must be equal; sigmas come from torch's float32
// ᾱ, which this package reproduces to within 2 float32 ulps (torch's own
// cumprod/linspace rounding is not reproduced bit for bit).
func TestFixturePipelineRuns(t *testing.T) {
	t.Parallel()
	runtimeName := map[string]string{
		"EulerDiscreteScheduler":      NameEuler,
		"DPMSolverMultistepScheduler": NameDPMPP2M,
	}
	total := 0
	for _, model := range []string{"sd15", "sd21v", "sdxl"} {
		index := fixtures.Path(t, "reference", model, "index.json")
		data, err := os.ReadFile(index)
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Runs []pipelineRun `json:"pipeline_runs"`
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatalf("%s: %v", index, err)
		}
		cfg, err := LoadConfig(fixtures.Path(t, "checkpoints", model, "scheduler", "scheduler_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range ref.Runs {
			total++
			t.Run(model+"/"+run.ID, func(t *testing.T) {
				name, ok := runtimeName[run.SchedulerClass]
				if !ok {
					t.Fatalf("no runtime scheduler for %s", run.SchedulerClass)
				}
				var recorded struct {
					Spacing  string   `json:"timestep_spacing"`
					Defaults []string `json:"_use_default_values"`
				}
				if err := json.Unmarshal(run.Config, &recorded); err != nil {
					t.Fatal(err)
				}
				if got := cfg.Spacing(name); got != recorded.Spacing {
					t.Errorf("spacing = %q, diffusers used %q", got, recorded.Spacing)
				}
				if absent := cfg.TimestepSpacing == ""; absent != slices.Contains(recorded.Defaults, "timestep_spacing") {
					t.Errorf("timestep_spacing absent here = %v, diffusers' _use_default_values = %v", absent, recorded.Defaults)
				}
				s, err := New(name, cfg, run.Steps)
				if err != nil {
					t.Fatal(err)
				}
				assertSeries(t, "timesteps", s.Timesteps(), run.Timesteps, 0)
				unet := make([]float64, len(s.Timesteps()))
				for i, ts := range s.Timesteps() {
					unet[i] = float64(float32(ts))
				}
				assertSeries(t, "unet_timesteps", unet, run.UNetTimesteps, 0)
				assertULPs(t, "sigmas", s.Sigmas(), run.Sigmas, 2)
				assertULPs(t, "init_noise_sigma", []float64{s.InitNoiseSigma()}, []float64{run.InitNoiseSigma}, 2)
			})
		}
	}
	if total == 0 {
		t.Fatal("no pipeline runs in the fixtures")
	}
}

// assertULPs checks that each value, as float32, is within maxULP float32
// steps of want.
func assertULPs(t *testing.T, what string, got, want []float64, maxULP int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range want {
		g, w := float32(got[i]), float32(want[i])
		if d := ulpDistance(g, w); d > maxULP {
			t.Errorf("%s[%d] = %.9g, want %.9g (%d float32 ulps apart)", what, i, g, w, d)
		}
	}
}

func ulpDistance(a, b float32) int {
	if a == b {
		return 0
	}
	if math.Signbit(float64(a)) != math.Signbit(float64(b)) {
		return math.MaxInt32
	}
	d := int64(math.Float32bits(a)) - int64(math.Float32bits(b))
	if d < 0 {
		d = -d
	}
	return int(d)
}
