package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

// fakeCatalog is an httpapi.ModelCatalog over a fixed map.
type fakeCatalog map[string]diffute.ModelInfo

var _ httpapi.ModelCatalog = fakeCatalog(nil)

func (c fakeCatalog) DescribeModel(_ context.Context, name string) (diffute.ModelInfo, error) {
	info, ok := c[name]
	if !ok {
		return info, errors.New("no such model files")
	}
	return info, nil
}

var testCatalog = fakeCatalog{
	"tiny-sd": {Name: "tiny-sd", Family: "sd1", Width: 512, Height: 512, DefaultSteps: 25, DefaultGuidance: 7.5,
		Schedulers: diffute.SchedulerNames, SourceFormat: "diffusers"},
	"stabilityai/stable-diffusion-xl-base-1.0": {Name: "stabilityai/stable-diffusion-xl-base-1.0", Family: "sdxl",
		Width: 1024, Height: 1024, DefaultSteps: 25, DefaultGuidance: 5, Schedulers: diffute.SchedulerNames, SourceFormat: "diffusers"},
}

func TestRequestDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name          string
		prompt        map[string]any
		model         string
		images, w, hh int
	}{
		{name: "only a prompt, SDXL", prompt: map[string]any{}, model: "stabilityai/stable-diffusion-xl-base-1.0", images: 1, w: 1024, hh: 1024},
		{name: "only a prompt, SD 1.x", prompt: map[string]any{}, model: "tiny-sd", images: 1, w: 512, hh: 512},
		{name: "nulls are absent", prompt: map[string]any{"num_images": nil, "width": nil, "height": nil}, model: "tiny-sd", images: 1, w: 512, hh: 512},
		{name: "one side sent", prompt: map[string]any{"width": 768, "num_images": 2}, model: "tiny-sd", images: 2, w: 768, hh: 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := map[string]any{"name": "p", "prompt": "a lighthouse"}
			for k, v := range tc.prompt {
				p[k] = v
			}
			req := map[string]any{"name": "defaults", "pretrained_model_name": tc.model, "prompts": []any{p}}
			resp, body := b.put(t, mustJSON(t, req))
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("status %d, body %s", resp.StatusCode, body)
			}
			var got struct {
				JobID int64 `json:"job_id"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			job := b.mem.job(got.JobID)
			if job == nil {
				t.Fatal("job not stored")
			}
			pr := job.Prompts[0]
			if pr.NumImages != tc.images || pr.Width != tc.w || pr.Height != tc.hh || pr.Steps != 0 || pr.GuidanceScale != nil {
				t.Errorf("stored prompt %d images %d×%d steps %d guidance %v, want %d images %d×%d and the model's steps and guidance",
					pr.NumImages, pr.Width, pr.Height, pr.Steps, pr.GuidanceScale, tc.images, tc.w, tc.hh)
			}
		})
	}
}

func TestRequestDefaultsNeedModel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name  string
		req   map[string]any
		field string
	}{
		{name: "missing prompt", req: map[string]any{"name": "x", "pretrained_model_name": "tiny-sd", "prompts": []any{map[string]any{"name": "p"}}}, field: "prompts[0].prompt"},
		{name: "missing model", req: map[string]any{"name": "x", "prompts": []any{map[string]any{"name": "p", "prompt": "x"}}}, field: "pretrained_model_name"},
		{name: "missing name", req: map[string]any{"pretrained_model_name": "tiny-sd", "prompts": []any{map[string]any{"name": "p", "prompt": "x"}}}, field: "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := b.put(t, mustJSON(t, tc.req))
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, body %s", resp.StatusCode, body)
			}
			p := decodeProblem(t, resp, body)
			if p.Field != tc.field || !strings.Contains(p.Detail, "is required") {
				t.Errorf("problem %+v, want field %s and \"is required\"", p, tc.field)
			}
		})
	}
	// A model that is not served is reported as such, not as a size.
	resp, body := b.put(t, mustJSON(t, map[string]any{"name": "x", "pretrained_model_name": "other/model",
		"prompts": []any{map[string]any{"name": "p", "prompt": "x"}}}))
	if p := decodeProblem(t, resp, body); resp.StatusCode != http.StatusUnprocessableEntity || p.Field != "pretrained_model_name" {
		t.Errorf("unserved model: %d %+v", resp.StatusCode, p)
	}
}

func TestListModels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	resp, body := b.get(t, "/"+org+"/"+project+"/models")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	var got httpapi.ModelList
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Models) != 2 || got.Models[0].Name != "tiny-sd" || got.Models[0].Width != 512 ||
		got.Models[1].Family != "sdxl" || got.Models[1].Width != 1024 || got.Models[1].DefaultGuidance != 5 {
		t.Errorf("models %+v", got.Models)
	}
	resp, body = b.do(t, http.MethodGet, "/"+org+"/"+project+"/models", nil, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a key: %d %s", resp.StatusCode, body)
	}
}
