package diffute

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// InferenceRequest is the body of PUT /{organization_id}/{project_id}/media/inference.
type InferenceRequest struct {
	Name                string          `json:"name"`
	Prompts             []PromptRequest `json:"prompts"`
	Webhook             string          `json:"webhook,omitempty"`
	Secret              string          `json:"secret,omitempty"`
	WebhookEvents       []string        `json:"webhook_events,omitempty"`
	PretrainedModelName string          `json:"pretrained_model_name"`
	OutputFormat        string          `json:"output_format,omitempty"`
}

// PromptRequest is one named prompt of an InferenceRequest.
type PromptRequest struct {
	Name      string `json:"name"`
	Prompt    string `json:"prompt"`
	NumImages int    `json:"num_images"`
	Height    int    `json:"height"`
	Width     int    `json:"width"`
	Style     string `json:"style,omitempty"`
	// NegativePrompt is nil when the request has none (absent or null), which is
	// not the same as "": as in diffusers, an absent negative prompt gives zero
	// unconditional embeddings on models that ask for it (SDXL's
	// force_zeros_for_empty_prompt), while "" is always encoded.
	NegativePrompt *string  `json:"negative_prompt,omitempty"`
	Seed           *int64   `json:"seed,omitempty"`
	Steps          int      `json:"steps,omitempty"`
	GuidanceScale  *float64 `json:"guidance_scale,omitempty"`
	Scheduler      string   `json:"scheduler,omitempty"`
	// RNG names the noise generator ("": the deployment's default): RNGTorch or
	// RNGCUDA.
	RNG string `json:"rng,omitempty"`
}

// NegativeText is the negative prompt, "" when there is none.
func (p PromptRequest) NegativeText() string {
	if p.NegativePrompt == nil {
		return ""
	}
	return *p.NegativePrompt
}

// StyledPrompt applies the documented style rule: the style, when given, follows the
// prompt after a comma and a space ("<prompt>, <style>").
func (p PromptRequest) StyledPrompt() string {
	prompt := strings.TrimSpace(p.Prompt)
	style := strings.TrimSpace(p.Style)
	if style == "" {
		return prompt
	}
	return prompt + ", " + style
}

// Output formats.
const (
	FormatPNG  = "png"
	FormatJPEG = "jpeg"
	FormatWebP = "webp"
)

// SchedulerNames are the schedulers a request may name; "" means the model's own scheduler_config.json.
var SchedulerNames = []string{"euler", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "ddim", "lcm"}

// Noise generators a request may name (PromptRequest.RNG).
const (
	// RNGTorch draws the starting noise (and ancestral step noise) as
	// torch.randn with torch.Generator("cpu").manual_seed(seed) does, bit for
	// bit: what diffusers gives on any machine with a CPU generator. torch seeds
	// its CPU generator with the seed's low 32 bits, so seeds s and s + k·2^32
	// give the same image.
	RNGTorch = "torch"
	// RNGCUDA draws as torch.randn on an NVIDIA GPU with a CUDA generator
	// (Philox 4x32-10, as AUTOMATIC1111's "NV" source computes it on the CPU);
	// all 64 bits of the seed count.
	RNGCUDA = "cuda"
)

// RNGNames lists the accepted values of PromptRequest.RNG besides "".
var RNGNames = []string{RNGTorch, RNGCUDA}

// MaxSeed is the largest seed accepted: seeds travel as JSON numbers and must stay
// exact in JavaScript clients. Image i of a prompt uses seed + i.
const MaxSeed = 1<<53 - 1

// Limits are the documented bounds of an inference request.
type Limits struct {
	MaxBodyBytes       int64
	MaxPrompts         int
	MaxImagesPerPrompt int
	MaxImagesPerJob    int
	MinSide, MaxSide   int
	MaxPixels          int // width × height of one image
	MaxNameLen         int // job name
	MaxPromptNameLen   int
	MaxPromptLen       int // prompt, negative prompt (bytes)
	MaxStyleLen        int
	MaxSteps           int
	MaxGuidance        float64
	MaxWebhookLen      int
	MaxSecretLen       int
}

// DefaultLimits are the limits a deployment enforces unless configured otherwise.
var DefaultLimits = Limits{
	MaxBodyBytes:       1 << 20,
	MaxPrompts:         16,
	MaxImagesPerPrompt: 8,
	MaxImagesPerJob:    64,
	MinSide:            64,
	MaxSide:            2048,
	MaxPixels:          1536 * 1536,
	MaxNameLen:         200,
	MaxPromptNameLen:   64,
	MaxPromptLen:       4000,
	MaxStyleLen:        1000,
	MaxSteps:           150,
	MaxGuidance:        30,
	MaxWebhookLen:      2048,
	MaxSecretLen:       4096,
}

var promptNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// ValidPromptName reports whether s is acceptable as a prompt name: it becomes a key of
// the manifest and a part of media paths, so only ASCII letters, digits, '_' and '-'
// are allowed, starting with a letter or digit.
func ValidPromptName(s string, maxLen int) bool {
	return len(s) <= maxLen && promptNameRE.MatchString(s)
}

// Validate checks r against the limits and the set of models this deployment serves
// (nil means any). It returns the first problem as an *Error naming the field.
func (r *InferenceRequest) Validate(l Limits, models []string) error {
	if err := checkText("name", r.Name, l.MaxNameLen, true); err != nil {
		return err
	}
	if r.PretrainedModelName == "" {
		return FieldErrorf(EUNPROCESSABLE, "pretrained_model_name", "is required")
	}
	if models != nil && !contains(models, r.PretrainedModelName) {
		return FieldErrorf(EUNPROCESSABLE, "pretrained_model_name",
			"model %q is not served by this deployment; served models: %s",
			truncate(r.PretrainedModelName, 100), strings.Join(models, ", "))
	}
	switch r.OutputFormat {
	case "", FormatPNG, FormatJPEG, FormatWebP:
	default:
		return FieldErrorf(EUNPROCESSABLE, "output_format", "must be one of png, jpeg, webp")
	}
	if r.Webhook != "" {
		if err := CheckWebhookURL(r.Webhook, l.MaxWebhookLen); err != nil {
			return err
		}
	}
	if err := checkWebhookEvents(r.WebhookEvents); err != nil {
		return err
	}
	if len(r.Secret) > l.MaxSecretLen {
		return FieldErrorf(EUNPROCESSABLE, "secret", "must be at most %d bytes", l.MaxSecretLen)
	}
	// The secret is sent as "Authorization: Bearer <secret>": a control
	// character (NUL, ESC, DEL, a line break…) would make every delivery fail.
	if !utf8.ValidString(r.Secret) || strings.ContainsFunc(r.Secret, unicode.IsControl) {
		return FieldErrorf(EUNPROCESSABLE, "secret", "must be a single line of valid UTF-8 without control characters")
	}
	if len(r.Prompts) == 0 {
		return FieldErrorf(EUNPROCESSABLE, "prompts", "at least one prompt is required")
	}
	if len(r.Prompts) > l.MaxPrompts {
		return FieldErrorf(EUNPROCESSABLE, "prompts", "at most %d prompts per request", l.MaxPrompts)
	}
	seen := make(map[string]bool, len(r.Prompts))
	total := 0
	for i := range r.Prompts {
		p := &r.Prompts[i]
		f := func(name string) string { return fmt.Sprintf("prompts[%d].%s", i, name) }
		if p.Name == "" {
			return FieldErrorf(EUNPROCESSABLE, f("name"), "is required")
		}
		if !ValidPromptName(p.Name, l.MaxPromptNameLen) {
			return FieldErrorf(EUNPROCESSABLE, f("name"),
				"must be 1-%d characters of A-Z, a-z, 0-9, '_' or '-', starting with a letter or digit", l.MaxPromptNameLen)
		}
		if seen[strings.ToLower(p.Name)] {
			return FieldErrorf(EUNPROCESSABLE, f("name"), "duplicate prompt name %q (names are compared case-insensitively)", p.Name)
		}
		seen[strings.ToLower(p.Name)] = true
		if err := checkText(f("prompt"), p.Prompt, l.MaxPromptLen, true); err != nil {
			return err
		}
		if err := checkText(f("style"), p.Style, l.MaxStyleLen, false); err != nil {
			return err
		}
		if err := checkText(f("negative_prompt"), p.NegativeText(), l.MaxPromptLen, false); err != nil {
			return err
		}
		if p.NumImages < 1 || p.NumImages > l.MaxImagesPerPrompt {
			return FieldErrorf(EUNPROCESSABLE, f("num_images"), "must be between 1 and %d", l.MaxImagesPerPrompt)
		}
		total += p.NumImages
		for _, side := range []struct {
			name string
			v    int
		}{{"height", p.Height}, {"width", p.Width}} {
			if side.v < l.MinSide || side.v > l.MaxSide {
				return FieldErrorf(EUNPROCESSABLE, f(side.name), "must be between %d and %d", l.MinSide, l.MaxSide)
			}
			if side.v%8 != 0 {
				return FieldErrorf(EUNPROCESSABLE, f(side.name), "must be a multiple of 8")
			}
		}
		if p.Width*p.Height > l.MaxPixels {
			return FieldErrorf(EUNPROCESSABLE, f("width"), "width × height must be at most %d pixels", l.MaxPixels)
		}
		if p.Seed != nil && (*p.Seed < 0 || *p.Seed > MaxSeed) {
			return FieldErrorf(EUNPROCESSABLE, f("seed"), "must be an integer between 0 and 2^53-1 (%d)", int64(MaxSeed))
		}
		if p.RNG != "" && !contains(RNGNames, p.RNG) {
			return FieldErrorf(EUNPROCESSABLE, f("rng"), "must be one of %s (got %q)", strings.Join(RNGNames, ", "), truncate(p.RNG, 40))
		}
		if p.Steps < 0 || p.Steps > l.MaxSteps {
			return FieldErrorf(EUNPROCESSABLE, f("steps"), "must be between 1 and %d (0 or absent: the model's default)", l.MaxSteps)
		}
		if g := p.GuidanceScale; g != nil && (*g < 0 || *g > l.MaxGuidance || *g != *g) {
			return FieldErrorf(EUNPROCESSABLE, f("guidance_scale"), "must be between 0 and %g", l.MaxGuidance)
		}
		if p.Scheduler != "" && !contains(SchedulerNames, p.Scheduler) {
			return FieldErrorf(EUNPROCESSABLE, f("scheduler"), "must be one of %s", strings.Join(SchedulerNames, ", "))
		}
	}
	if total > l.MaxImagesPerJob {
		return FieldErrorf(EUNPROCESSABLE, "prompts", "at most %d images per request (asked for %d)", l.MaxImagesPerJob, total)
	}
	return nil
}

// CheckWebhookURL checks the syntax of a webhook URL at submission: http or https, a
// host, no user info. Whether the destination may be dialed is decided at dial time.
func CheckWebhookURL(s string, maxLen int) error {
	if len(s) > maxLen {
		return FieldErrorf(EUNPROCESSABLE, "webhook", "must be at most %d bytes", maxLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return FieldErrorf(EUNPROCESSABLE, "webhook", "is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return FieldErrorf(EUNPROCESSABLE, "webhook", "must be an http or https URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return FieldErrorf(EUNPROCESSABLE, "webhook", "must have a host")
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		// url.Parse takes any digits; a port outside 1-65535 can never be dialed.
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return FieldErrorf(EUNPROCESSABLE, "webhook", "port must be a number from 1 to 65535")
		}
	}
	if u.User != nil {
		return FieldErrorf(EUNPROCESSABLE, "webhook", "must not contain user info")
	}
	if u.Fragment != "" {
		return FieldErrorf(EUNPROCESSABLE, "webhook", "must not contain a fragment")
	}
	return nil
}

func checkText(field, s string, maxLen int, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return FieldErrorf(EUNPROCESSABLE, field, "is required")
	}
	if len(s) > maxLen {
		return FieldErrorf(EUNPROCESSABLE, field, "must be at most %d bytes", maxLen)
	}
	if !utf8.ValidString(s) {
		return FieldErrorf(EUNPROCESSABLE, field, "must be valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return FieldErrorf(EUNPROCESSABLE, field, "must not contain control characters")
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// checkWebhookEvents accepts each known event once.
func checkWebhookEvents(events []string) error {
	seen := make(map[string]bool, len(events))
	for i, e := range events {
		if !ValidWebhookEvent(e) {
			return FieldErrorf(EUNPROCESSABLE, fmt.Sprintf("webhook_events[%d]", i),
				"unknown event %q; events are completed, started and prompt.completed", truncate(e, 64))
		}
		if seen[e] {
			return FieldErrorf(EUNPROCESSABLE, fmt.Sprintf("webhook_events[%d]", i), "event %q is listed twice", e)
		}
		seen[e] = true
	}
	return nil
}
