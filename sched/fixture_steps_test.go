package sched

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/diffute/diffute/internal/fixtures"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestFixtureStepsReplay drives each scheduler through a fixture pipeline run
// with the UNet outputs diffusers recorded: the latents start as the recorded
// initial noise × InitNoiseSigma, each step's UNet input must be the recorded
// latent_model_input (latents × ScaleModelInput), and after guidance and Step
// the latents must be the recorded step_latents. This checks the update maths
// against diffusers on real tensors, not only the schedule. diffusers computes
// in float32 torch ops in its own order, so values agree to float32 rounding.
func TestFixtureStepsReplay(t *testing.T) {
	t.Parallel()
	runtimeName := map[string]string{"EulerDiscreteScheduler": NameEuler, "DPMSolverMultistepScheduler": NameDPMPP2M}
	for _, model := range []string{"sd15", "sd21v", "sdxl"} {
		dir := fixtures.Path(t, "reference", model)
		data, err := os.ReadFile(filepath.Join(dir, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Runs []struct {
				ID       string            `json:"id"`
				Class    string            `json:"scheduler_class"`
				Steps    int               `json:"num_inference_steps"`
				Guidance float64           `json:"guidance_scale"`
				Tensors  map[string]string `json:"tensors"`
			} `json:"pipeline_runs"`
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(fixtures.Path(t, "checkpoints", model, "scheduler", "scheduler_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range ref.Runs {
			t.Run(model+"/"+run.ID, func(t *testing.T) {
				t.Parallel()
				load := func(key string) []float32 { return readF32(t, filepath.Join(dir, run.Tensors[key]+".bin")) }
				noise, inputs, preds, want := load("initial_noise"), load("step_latent_model_input"), load("step_noise_pred"), load("step_latents")
				n := len(noise)
				s, err := New(runtimeName[run.Class], cfg, run.Steps)
				if err != nil {
					t.Fatal(err)
				}
				latents := make([]float32, n)
				sigma := float32(s.InitNoiseSigma())
				for i, v := range noise {
					latents[i] = v * sigma
				}
				g := float32(run.Guidance)
				guided := make([]float32, n)
				for step := range run.Steps {
					scale := s.ScaleModelInput(step)
					in := inputs[step*2*n : (step*2+1)*n] // the uncond half; the cond half is the same
					for i, v := range latents {
						assertClose32(t, fmt.Sprintf("step %d input[%d]", step, i), v*scale, in[i], 2e-6)
					}
					uncond, cond := preds[step*2*n:(step*2+1)*n], preds[(step*2+1)*n:(step*2+2)*n]
					for i := range guided {
						guided[i] = uncond[i] + g*(cond[i]-uncond[i])
					}
					if err := s.Step(step, guided, latents, nil); err != nil {
						t.Fatal(err)
					}
					w := want[step*n : (step+1)*n]
					for i, v := range latents {
						assertClose32(t, fmt.Sprintf("step %d latents[%d]", step, i), v, w[i], 2e-5)
					}
					// Continue from diffusers' own latents so an error does not compound.
					copy(latents, w)
				}
			})
		}
	}
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// assertClose32 allows rel relative error with an absolute floor of rel.
func assertClose32(t *testing.T, what string, got, want float32, rel float64) {
	t.Helper()
	if d := math.Abs(float64(got) - float64(want)); d > rel*math.Max(math.Abs(float64(want)), 1) {
		t.Errorf("%s = %.9g, want %.9g (diff %.3g)", what, got, want, d)
	}
}
