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

// Recipe is what made a prompt's images, as the engine resolved the request:
// enough to make the same images again, with Diffute or with diffusers.
type Recipe struct {
	Model string `json:"model"` // the name the request used
	// ModelSource says which weights that name meant: "hf:ORG/NAME@COMMIT" for
	// a Hugging Face snapshot, "sha256:HEX" for a single-file checkpoint (the
	// file's hash, as AUTOMATIC1111 and Civitai list it), "local:FOLDER" for
	// another folder.
	ModelSource string `json:"model_source"`
	RNG         string `json:"rng"`
	// Seeds are the seeds of the images in order (image i: seed + i).
	Seeds []int64 `json:"seeds"`
	// Scheduler is the algorithm that ran (euler, dpmpp_2m, …) and
	// TimestepSpacing its spacing (leading, linspace, trailing).
	Scheduler       string  `json:"scheduler"`
	TimestepSpacing string  `json:"timestep_spacing"`
	Steps           int     `json:"steps"`
	GuidanceScale   float64 `json:"guidance_scale"`
	Width           int     `json:"width"`
	Height          int     `json:"height"`
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
	// Recipe resolves req as Generate would (the model's default steps,
	// guidance, scheduler and spacing) without generating.
	Recipe(ctx context.Context, req GenerateRequest) (Recipe, error)
}
