package diffute

import (
	"context"
	"image"
)

// GenerateRequest asks an Engine for NumImages images of one prompt. Image i is
// generated from its own generator seeded with Seed+i (as diffusers with a list
// of generators), so each image can be reproduced on its own.
type GenerateRequest struct {
	Model  string
	Prompt string // already styled
	// NegativePrompt is nil when none was given, which models with
	// force_zeros_for_empty_prompt (SDXL) turn into zero embeddings; "" is
	// encoded like any prompt.
	NegativePrompt *string
	NumImages      int
	Width, Height  int
	Steps          int      // 0: the model's default
	GuidanceScale  *float64 // nil: the model's default
	Scheduler      string   // "": the model's scheduler_config.json
	Seed           int64
	RNG            string // RNGTorch, RNGCUDA, or "": the engine's default
}

// Progress reports a finished denoising step of a Generate call.
type Progress struct {
	Step  int // 1-based
	Steps int
}

// Engine turns prompts into images. Implementations are safe for concurrent use.
type Engine interface {
	// Generate runs the pipeline. progress, when not nil, is called after each step.
	// Cancelling ctx stops the run between steps with ctx's error.
	Generate(ctx context.Context, req GenerateRequest, progress func(Progress)) ([]image.Image, error)
}
