package diffute

// ModelInfo describes a model a deployment serves, as GET
// /{org}/{project}/models lists it and as request defaults use it.
type ModelInfo struct {
	Name string `json:"name"`
	// Family is sd1, sd2 or sdxl; Turbo marks distilled few-step models
	// (trailing timestep spacing).
	Family string `json:"family"`
	Turbo  bool   `json:"turbo"`
	// Width and Height are the native size: what a prompt gets when it sends
	// neither.
	Width  int `json:"width"`
	Height int `json:"height"`
	// DefaultSteps and DefaultGuidance are what a prompt gets when it leaves
	// steps and guidance_scale unset.
	DefaultSteps    int     `json:"default_steps"`
	DefaultGuidance float64 `json:"default_guidance_scale"`
	// Schedulers are the names a prompt's scheduler may take.
	Schedulers []string `json:"schedulers"`
	// SourceFormat is how the weights are stored: diffusers, onnx or single-file.
	SourceFormat string `json:"source_format"`
}
