package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/sched"
)

// scheduleReport is what `diffute schedule --json` prints.
type scheduleReport struct {
	Model           string    `json:"model"`
	Class           string    `json:"class"`     // _class_name of scheduler_config.json
	Scheduler       string    `json:"scheduler"` // the runtime scheduler
	TimestepSpacing string    `json:"timestep_spacing"`
	SpacingFrom     string    `json:"spacing_from"` // "config" or "class default"
	StepsOffset     int       `json:"steps_offset"`
	PredictionType  string    `json:"prediction_type"`
	Steps           int       `json:"steps"`
	Timesteps       []float64 `json:"timesteps"`        // as the UNet gets them (float32)
	Sigmas          []float64 `json:"sigmas,omitempty"` // σ before each step and after the last
	InitNoiseSigma  float64   `json:"init_noise_sigma"`
}

// runSchedule prints the timesteps and sigmas a model's scheduler config gives
// for a step count, as the engine will use them.
func runSchedule(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "schedule", "schedule --model NAME [--scheduler S] --steps N [--json]")
	model := fs.String("model", "diffute/tiny-sd", "model name (a Hugging Face repo in the cache, a tiny test model, or a model folder)")
	scheduler := fs.String("scheduler", "", "scheduler: "+strings.Join(diffute.SchedulerNames, ", ")+" (default: the model's)")
	steps := fs.Int("steps", 0, "number of inference steps")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("schedule: unexpected argument %q", fs.Arg(0))
	}
	if *steps < 1 {
		return errors.New("schedule: --steps N is required (1 or more)")
	}
	if *scheduler != "" && !slices.Contains(diffute.SchedulerNames, *scheduler) {
		return fmt.Errorf("schedule: --scheduler %q: want one of %s", *scheduler, strings.Join(diffute.SchedulerNames, ", "))
	}
	dir, err := modelFolder(ctx, env, *model)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	cfg, err := sched.LoadConfig(filepath.Join(dir, "scheduler", "scheduler_config.json"))
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	s, err := sched.New(*scheduler, cfg, *steps)
	if err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	rep := scheduleReport{
		Model: *model, Class: cfg.ClassName, Scheduler: s.Name(), TimestepSpacing: cfg.Spacing(*scheduler),
		SpacingFrom: "config", StepsOffset: cfg.StepsOffset, PredictionType: cfg.PredictionType,
		Steps: len(s.Timesteps()), Sigmas: s.Sigmas(), InitNoiseSigma: float64(float32(s.InitNoiseSigma())),
	}
	if cfg.TimestepSpacing == "" {
		rep.SpacingFrom = "class default"
	}
	for _, t := range s.Timesteps() {
		rep.Timesteps = append(rep.Timesteps, float64(float32(t)))
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(env.stdout, "model %s: %s, scheduler %s, timestep_spacing %s (%s), steps_offset %d, %s\n",
		rep.Model, rep.Class, rep.Scheduler, rep.TimestepSpacing, rep.SpacingFrom, rep.StepsOffset, rep.PredictionType)
	fmt.Fprintf(env.stdout, "%d steps, init_noise_sigma %s\n", rep.Steps, f32String(rep.InitNoiseSigma))
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	if rep.Sigmas != nil {
		fmt.Fprintln(tw, "step\ttimestep\tsigma")
	} else {
		fmt.Fprintln(tw, "step\ttimestep")
	}
	for i, t := range rep.Timesteps {
		if rep.Sigmas != nil {
			fmt.Fprintf(tw, "%d\t%s\t%s\n", i, f32String(t), f32String(rep.Sigmas[i]))
		} else {
			fmt.Fprintf(tw, "%d\t%s\n", i, f32String(t))
		}
	}
	if rep.Sigmas != nil {
		fmt.Fprintf(tw, "end\t\t%s\n", f32String(rep.Sigmas[len(rep.Sigmas)-1]))
	}
	return tw.Flush()
}

// modelFolder is name itself when it is a folder with a scheduler config, else
// the model source's folder for it (hub cache or tiny model).
func modelFolder(ctx context.Context, env *environment, name string) (string, error) {
	if fi, err := os.Stat(filepath.Join(name, "scheduler", "scheduler_config.json")); err == nil && !fi.IsDir() {
		return name, nil
	}
	src, err := newModelSource(env.getenv)
	if err != nil {
		return "", err
	}
	return src.Resolve(ctx, name)
}

// f32String is the shortest decimal that reads back as the same float32.
func f32String(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 32)
}
