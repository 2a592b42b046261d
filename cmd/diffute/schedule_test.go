package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/diffute/diffute/internal/fixtures"
)

// TestScheduleMatchesDiffusersRuns runs `diffute schedule --json` on the
// fixture checkpoints and compares with the schedules diffusers recorded for
// their pipeline runs (Euler and DPM-Solver++ made with from_config of each
// checkpoint's published scheduler config).
func TestScheduleMatchesDiffusersRuns(t *testing.T) {
	t.Parallel()
	runtime := map[string]string{"EulerDiscreteScheduler": "euler", "DPMSolverMultistepScheduler": "dpmpp_2m"}
	for _, model := range []string{"sd15", "sd21v", "sdxl"} {
		data, err := os.ReadFile(fixtures.Path(t, "reference", model, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ref struct {
			Runs []struct {
				ID        string    `json:"id"`
				Class     string    `json:"scheduler_class"`
				Steps     int       `json:"num_inference_steps"`
				Timesteps []float64 `json:"timesteps"`
				Sigmas    []float64 `json:"sigmas"`
				Config    struct {
					Spacing string `json:"timestep_spacing"`
				} `json:"scheduler_config"`
			} `json:"pipeline_runs"`
		}
		if err := json.Unmarshal(data, &ref); err != nil {
			t.Fatal(err)
		}
		for _, run := range ref.Runs {
			var stdout, stderr bytes.Buffer
			args := []string{"schedule", "--model", fixtures.Path(t, "checkpoints", model),
				"--scheduler", runtime[run.Class], "--steps", strconv.Itoa(run.Steps), "--json"}
			if err := runCLI(args, &stdout, &stderr); err != nil {
				t.Fatalf("%s %s: %v\n%s", model, run.ID, err, stderr.String())
			}
			var got scheduleReport
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("%s: %v\n%s", run.ID, err, stdout.String())
			}
			if got.TimestepSpacing != run.Config.Spacing {
				t.Errorf("%s/%s: spacing %q, diffusers used %q", model, run.ID, got.TimestepSpacing, run.Config.Spacing)
			}
			if !equalFloats(got.Timesteps, run.Timesteps, 0) || !equalFloats(got.Sigmas, run.Sigmas, 3e-7) {
				t.Errorf("%s/%s: timesteps %v sigmas %v, diffusers %v %v", model, run.ID, got.Timesteps, got.Sigmas, run.Timesteps, run.Sigmas)
			}
		}
	}
}

// TestScheduleTinyModelOffline prints a tiny model's own schedule as a table,
// with nothing downloaded.
func TestScheduleTinyModelOffline(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := runCLI([]string{"schedule", "--model", "diffute/tiny-sd", "--steps", "30"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	out := stdout.String()
	// tiny-sd's config is SD 1.5's: PNDM, leading, steps_offset 1; Diffute runs
	// it with euler. Leading 30 steps: (29 − i)·33 + 1.
	if !strings.Contains(out, "PNDMScheduler, scheduler euler, timestep_spacing leading (config), steps_offset 1") {
		t.Errorf("header:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2+1+30+1 { // two header lines, column names, 30 steps, end
		t.Fatalf("%d lines, want 34:\n%s", len(lines), out)
	}
	if f := strings.Fields(lines[3]); len(f) != 3 || f[0] != "0" || f[1] != "958" {
		t.Errorf("first step %q, want step 0 at timestep 958", lines[3])
	}
	if f := strings.Fields(lines[32]); len(f) != 3 || f[0] != "29" || f[1] != "1" {
		t.Errorf("last step %q, want step 29 at timestep 1", lines[32])
	}
	if !strings.HasPrefix(lines[33], "end") || !strings.HasSuffix(lines[33], " 0") {
		t.Errorf("end line %q, want the final sigma 0", lines[33])
	}
}

func TestScheduleBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"schedule", "--model", "diffute/tiny-sd"}, "--steps N is required"},
		{[]string{"schedule", "--model", "diffute/tiny-sd", "--steps", "4", "--scheduler", "pndm"}, `--scheduler "pndm": want one of euler`},
		{[]string{"schedule", "--model", "diffute/tiny-sd", "--steps", "60", "--scheduler", "lcm"}, "original_inference_steps"},
		{[]string{"schedule", "--model", "nobody/nothing", "--steps", "4"}, "diffute models pull nobody/nothing"},
	} {
		var stdout, stderr bytes.Buffer
		err := runCLI(tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("diffute %s: %v, want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

// runCLI runs the program offline with its caches in the shared test folders.
func runCLI(args []string, stdout, stderr *bytes.Buffer) error {
	vars := map[string]string{"DIFFUTE_TINY_DIR": sharedTinyDir, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": filepath.Join(sharedTinyDir, "no-hf-cache")}
	return run(context.Background(), args, func(k string) string { return vars[k] }, stdout, stderr)
}

func equalFloats(got, want []float64, rel float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > rel*math.Abs(want[i]) {
			return false
		}
	}
	return true
}
