package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/imageenc"
)

func runGenerate(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "generate", "generate --model NAME --prompt TEXT --out FILE [flags]")
	var ef engineFlags
	ef.register(fs)
	model := fs.String("model", "diffute/tiny-sd", "model: a Hugging Face repo in the cache, a tiny test model, a local model folder or a .safetensors checkpoint")
	prompt := fs.String("prompt", "", "what to draw")
	negative := fs.String("negative-prompt", "", "what to avoid (not given: none, which SDXL turns into zero conditioning; an explicit \"\" is encoded)")
	seed := fs.Int64("seed", -1, "random seed (default: random)")
	steps := fs.Int("steps", 0, "denoising steps (0: the model's default)")
	width := fs.Int("width", 512, "image width in pixels, a multiple of 8")
	height := fs.Int("height", 512, "image height in pixels, a multiple of 8")
	guidance := fs.Float64("guidance", -1, "classifier-free guidance scale (default: the model's)")
	scheduler := fs.String("scheduler", "", "scheduler: "+strings.Join(diffute.SchedulerNames, ", ")+" (default: the model's)")
	out := fs.String("out", "", "output file; .png, .jpg or .webp")
	if err := parseFlagsNoArgs(fs, env, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("generate: --out FILE is required, for example --out image.png")
	}
	format, err := imageenc.ParseFormat(strings.TrimPrefix(strings.ToLower(filepath.Ext(*out)), "."))
	if err != nil {
		return fmt.Errorf("generate: --out %s: %w (use .png, .jpg or .webp)", *out, err)
	}
	var neg *string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "negative-prompt" {
			neg = negative
		}
	})
	req := diffute.InferenceRequest{
		Name:                "generate",
		PretrainedModelName: *model,
		OutputFormat:        string(format),
		Prompts: []diffute.PromptRequest{{
			Name: "image", Prompt: *prompt, NegativePrompt: neg, NumImages: 1,
			Width: *width, Height: *height, Steps: *steps, Scheduler: *scheduler,
		}},
	}
	if *seed >= 0 {
		req.Prompts[0].Seed = seed
	}
	if *guidance >= 0 {
		req.Prompts[0].GuidanceScale = guidance
	}
	if err := req.Validate(diffute.DefaultLimits, nil); err != nil {
		return fmt.Errorf("generate: --%s: %s", flagOfField(diffute.ErrorField(err)), diffute.ErrorMessage(err))
	}
	src, err := newModelSource(env.getenv)
	if err != nil {
		return err
	}
	// The command line is the operator's: a local path given here is served.
	served, err := src.served(*model)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if len(served) != 1 {
		return fmt.Errorf("generate: --model names one model, got %d", len(served))
	}
	req.PretrainedModelName = served[0]
	eng, err := ef.open(src, slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer eng.Close()

	p := req.Prompts[0]
	s := diffute.NewSeed()
	if p.Seed != nil {
		s = *p.Seed
	}
	var bar func(diffute.Progress)
	if isTerminal(env.stderr) {
		bar = func(pr diffute.Progress) {
			fmt.Fprintf(env.stderr, "\r%s step %d/%d", progressBar(pr.Step, pr.Steps, 30), pr.Step, pr.Steps)
		}
	}
	start := time.Now()
	images, err := eng.Generate(ctx, diffute.GenerateRequest{
		Model: req.PretrainedModelName, Prompt: p.StyledPrompt(), NegativePrompt: p.NegativePrompt, NumImages: 1,
		Width: p.Width, Height: p.Height, Steps: p.Steps, GuidanceScale: p.GuidanceScale,
		Scheduler: p.Scheduler, Seed: s, RNG: ef.rng,
	}, bar)
	if bar != nil {
		fmt.Fprintln(env.stderr)
	}
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	var buf bytes.Buffer
	if err := imageenc.Encode(&buf, images[0], format, imageenc.Options{}); err != nil {
		return fmt.Errorf("generate: encode: %w", err)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	fmt.Fprintf(env.stdout, "wrote %s (%dx%d, seed %d, %s)\n", *out, p.Width, p.Height, s, time.Since(start).Round(time.Millisecond))
	return nil
}

// flagOfField maps a request field named by validation to generate's flag.
func flagOfField(field string) string {
	_, name, ok := strings.Cut(field, "].")
	if !ok {
		name = field
	}
	switch name {
	case "pretrained_model_name":
		return "model"
	case "negative_prompt":
		return "negative-prompt"
	case "guidance_scale":
		return "guidance"
	case "output_format":
		return "out"
	}
	return name
}

// progressBar draws done/total as a bar of width cells.
func progressBar(done, total, width int) string {
	if total <= 0 {
		total = 1
	}
	n := done * width / total
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
