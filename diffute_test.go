package diffute_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

func validRequest() diffute.InferenceRequest {
	return diffute.InferenceRequest{
		Name:                "Houston",
		PretrainedModelName: "diffute/tiny-sd",
		Webhook:             "https://app.example/hook",
		Secret:              "s",
		Prompts: []diffute.PromptRequest{
			{Name: "Ansel_Adams", Prompt: "Yosemite", NumImages: 3, Height: 1024, Width: 768, Style: "photography"},
		},
	}
}

func TestValidateRNGAndSeed(t *testing.T) {
	t.Parallel()
	for _, rng := range []string{"", diffute.RNGTorch, diffute.RNGCUDA} {
		r := validRequest()
		r.Prompts[0].RNG = rng
		seed := int64(diffute.MaxSeed)
		r.Prompts[0].Seed = &seed
		if err := r.Validate(diffute.DefaultLimits, nil); err != nil {
			t.Errorf("rng %q, seed 2^53-1: %v", rng, err)
		}
	}
	r := validRequest()
	r.Prompts[0].RNG = "philox"
	err := r.Validate(diffute.DefaultLimits, nil)
	if msg := diffute.ErrorMessage(err); !strings.Contains(msg, "torch, cuda") || diffute.ErrorCode(err) != diffute.EUNPROCESSABLE {
		t.Errorf("unknown rng: %v, want a 422 listing torch, cuda", err)
	}
	r = validRequest()
	neg := int64(-1)
	r.Prompts[0].Seed = &neg
	if err := r.Validate(diffute.DefaultLimits, nil); diffute.ErrorField(err) != "prompts[0].seed" || !strings.Contains(diffute.ErrorMessage(err), "9007199254740991") {
		t.Errorf("negative seed: %v, want prompts[0].seed with the range", err)
	}
	// An empty negative prompt is a value, not an absence.
	r = validRequest()
	empty := ""
	r.Prompts[0].NegativePrompt = &empty
	if err := r.Validate(diffute.DefaultLimits, nil); err != nil || r.Prompts[0].NegativePrompt == nil {
		t.Errorf("negative_prompt \"\": %v", err)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	t.Parallel()
	seed, huge, neg := int64(1)<<53, 1e9, -1.0
	tests := []struct {
		name  string
		edit  func(r *diffute.InferenceRequest)
		field string
	}{
		{"no name", func(r *diffute.InferenceRequest) { r.Name = " " }, "name"},
		{"no model", func(r *diffute.InferenceRequest) { r.PretrainedModelName = "" }, "pretrained_model_name"},
		{"model not served", func(r *diffute.InferenceRequest) { r.PretrainedModelName = "x/y" }, "pretrained_model_name"},
		{"format", func(r *diffute.InferenceRequest) { r.OutputFormat = "gif" }, "output_format"},
		{"webhook scheme", func(r *diffute.InferenceRequest) { r.Webhook = "ftp://x/y" }, "webhook"},
		{"webhook user info", func(r *diffute.InferenceRequest) { r.Webhook = "https://u:p@x/y" }, "webhook"},
		{"webhook no host", func(r *diffute.InferenceRequest) { r.Webhook = "https:///y" }, "webhook"},
		{"secret newline", func(r *diffute.InferenceRequest) { r.Secret = "a\nb" }, "secret"},
		// Regression: these were accepted and then no delivery could ever be sent.
		{"secret NUL", func(r *diffute.InferenceRequest) { r.Secret = "a\x00b" }, "secret"},
		{"secret DEL", func(r *diffute.InferenceRequest) { r.Secret = "a\x7fb" }, "secret"},
		{"secret ESC", func(r *diffute.InferenceRequest) { r.Secret = "\x1b[31m" }, "secret"},
		{"secret C1 control", func(r *diffute.InferenceRequest) { r.Secret = "a\u0085b" }, "secret"},
		{"webhook port 0", func(r *diffute.InferenceRequest) { r.Webhook = "https://example.com:0/hook" }, "webhook"},
		{"webhook port 65536", func(r *diffute.InferenceRequest) { r.Webhook = "https://example.com:65536/hook" }, "webhook"},
		{"webhook port 99999999", func(r *diffute.InferenceRequest) { r.Webhook = "https://example.com:99999999/hook" }, "webhook"},
		{"webhook port with leading zero", func(r *diffute.InferenceRequest) { r.Webhook = "https://example.com:0443/hook" }, "webhook"},
		{"webhook empty port", func(r *diffute.InferenceRequest) { r.Webhook = "https://example.com:/hook" }, "webhook"},
		{"no prompts", func(r *diffute.InferenceRequest) { r.Prompts = nil }, "prompts"},
		{"path in prompt name", func(r *diffute.InferenceRequest) { r.Prompts[0].Name = "../x" }, "prompts[0].name"},
		{"slash in prompt name", func(r *diffute.InferenceRequest) { r.Prompts[0].Name = "a/b" }, "prompts[0].name"},
		{"non-ASCII prompt name", func(r *diffute.InferenceRequest) { r.Prompts[0].Name = "é" }, "prompts[0].name"},
		{"long prompt name", func(r *diffute.InferenceRequest) { r.Prompts[0].Name = strings.Repeat("a", 65) }, "prompts[0].name"},
		{"duplicate prompt name", func(r *diffute.InferenceRequest) {
			p := r.Prompts[0]
			p.Name = "ansel_adams"
			r.Prompts = append(r.Prompts, p)
		}, "prompts[1].name"},
		{"empty prompt", func(r *diffute.InferenceRequest) { r.Prompts[0].Prompt = "" }, "prompts[0].prompt"},
		{"control character", func(r *diffute.InferenceRequest) { r.Prompts[0].Style = "a\x00" }, "prompts[0].style"},
		{"zero images", func(r *diffute.InferenceRequest) { r.Prompts[0].NumImages = 0 }, "prompts[0].num_images"},
		{"height not multiple of 8", func(r *diffute.InferenceRequest) { r.Prompts[0].Height = 1020 }, "prompts[0].height"},
		{"negative width", func(r *diffute.InferenceRequest) { r.Prompts[0].Width = -8 }, "prompts[0].width"},
		{"too many pixels", func(r *diffute.InferenceRequest) { r.Prompts[0].Width, r.Prompts[0].Height = 2048, 2048 }, "prompts[0].width"},
		{"seed over 2^53", func(r *diffute.InferenceRequest) { r.Prompts[0].Seed = &seed }, "prompts[0].seed"},
		{"steps", func(r *diffute.InferenceRequest) { r.Prompts[0].Steps = 151 }, "prompts[0].steps"},
		{"guidance huge", func(r *diffute.InferenceRequest) { r.Prompts[0].GuidanceScale = &huge }, "prompts[0].guidance_scale"},
		{"guidance negative", func(r *diffute.InferenceRequest) { r.Prompts[0].GuidanceScale = &neg }, "prompts[0].guidance_scale"},
		{"scheduler", func(r *diffute.InferenceRequest) { r.Prompts[0].Scheduler = "pndm" }, "prompts[0].scheduler"},
		{"rng", func(r *diffute.InferenceRequest) { r.Prompts[0].RNG = "mps" }, "prompts[0].rng"},
		{"rng case", func(r *diffute.InferenceRequest) { r.Prompts[0].RNG = "Torch" }, "prompts[0].rng"},
		{"too many images", func(r *diffute.InferenceRequest) {
			for i := range 8 {
				p := r.Prompts[0]
				p.Name = "p" + string(rune('a'+i))
				p.NumImages = 8
				r.Prompts = append(r.Prompts, p)
			}
		}, "prompts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := validRequest()
			tt.edit(&r)
			err := r.Validate(diffute.DefaultLimits, []string{"diffute/tiny-sd"})
			if diffute.ErrorCode(err) != diffute.EUNPROCESSABLE || diffute.ErrorField(err) != tt.field {
				t.Fatalf("Validate = %v, want %s on %s", err, diffute.EUNPROCESSABLE, tt.field)
			}
		})
	}
	r := validRequest()
	if err := r.Validate(diffute.DefaultLimits, []string{"diffute/tiny-sd"}); err != nil {
		t.Fatalf("valid request: %v", err)
	}
	r.Webhook, r.Secret = "https://example.com:65535/hook", "tab-less sécret ✓"
	if err := r.Validate(diffute.DefaultLimits, []string{"diffute/tiny-sd"}); err != nil {
		t.Fatalf("port 65535 and a non-ASCII secret: %v", err)
	}
}

func TestStyledPrompt(t *testing.T) {
	t.Parallel()
	p := diffute.PromptRequest{Prompt: " Yosemite ", Style: "photography in the style of Ansel Adams"}
	if got := p.StyledPrompt(); got != "Yosemite, photography in the style of Ansel Adams" {
		t.Errorf("StyledPrompt = %q", got)
	}
	p.Style = " "
	if got := p.StyledPrompt(); got != "Yosemite" {
		t.Errorf("StyledPrompt without style = %q", got)
	}
}

func TestNewJobIDRange(t *testing.T) {
	t.Parallel()
	seen := map[int64]bool{}
	for range 1000 {
		id := diffute.NewJobID()
		if id < 1<<40 || id > diffute.MaxSeed {
			t.Fatalf("job ID %d outside [2^40, 2^53)", id)
		}
		if seen[id] {
			t.Fatalf("job ID %d repeated", id)
		}
		seen[id] = true
	}
}

func TestAPIKeyHashAcceptsLabel(t *testing.T) {
	t.Parallel()
	secret, hash := diffute.NewAPIKeySecret()
	if !strings.HasPrefix(secret, diffute.APIKeyPrefix) || len(secret) != len(diffute.APIKeyPrefix)+43 {
		t.Fatalf("secret %q", secret)
	}
	if !bytes.Equal(diffute.HashAPIKey(secret+"/default"), hash) || !bytes.Equal(diffute.HashAPIKey(" "+secret), hash) {
		t.Error("the <key>/<label> form must hash like the key")
	}
	if other, _ := diffute.NewAPIKeySecret(); bytes.Equal(diffute.HashAPIKey(other), hash) {
		t.Error("two keys hash alike")
	}
}

type urlMedia struct{ diffute.MediaStore }

func (urlMedia) URL(_ context.Context, key string, ttl time.Duration) (string, error) {
	return "https://m/" + key + "?ttl=" + ttl.String(), nil
}
func (urlMedia) Open(context.Context, string) (io.ReadSeekCloser, diffute.MediaInfo, error) {
	return nil, diffute.MediaInfo{}, nil
}

func TestNewManifest(t *testing.T) {
	t.Parallel()
	job := &diffute.Job{ID: 7, Org: "o", Project: "p", Name: "Houston", Status: diffute.StatusFailed, Error: "boom",
		Prompts: []diffute.JobPrompt{
			{PromptRequest: diffute.PromptRequest{Name: "a"}, Images: []string{diffute.MediaKey("o", "p", 7, "a", 0, "png")}},
			{PromptRequest: diffute.PromptRequest{Name: "b"}},
		}}
	m, err := diffute.NewManifest(context.Background(), job, urlMedia{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "Houston" || m.JobID != 7 || m.Status != diffute.StatusFailed || m.Error != "boom" {
		t.Errorf("manifest %+v", m)
	}
	if got := m.Images["a"]; len(got) != 1 || got[0] != "https://m/o/p/7/a/0.png?ttl=1h0m0s" {
		t.Errorf("images[a] = %v", got)
	}
	if got, ok := m.Images["b"]; !ok || len(got) != 0 {
		t.Errorf("a prompt without images must still be a key with an empty list: %v", got)
	}
}
