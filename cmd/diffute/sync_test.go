package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
)

// TestSyncAndDefaultsEndToEnd runs the real server on the tiny models: a PUT
// with only a prompt and Prefer: wait=30 answers 200 with the manifest of a
// 512×512 image (tiny-sd's native size), and GET …/models lists the models
// with their native sizes. Every exchange is validated against openapi.json.
func TestSyncAndDefaultsEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--models", "diffute/tiny-sd,diffute/tiny-sdxl")
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")

	resp, body := doJSON(t, http.MethodGet, srv.url+"/acme/default/models", key, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET models: %s %s", resp.Status, body)
	}
	var list httpapi.ModelList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int{}
	for _, m := range list.Models {
		sizes[m.Name] = m.Width
		if m.Height != m.Width || m.DefaultSteps < 1 || len(m.Schedulers) == 0 || m.SourceFormat == "" {
			t.Errorf("model %+v", m)
		}
	}
	if len(list.Models) != 2 || sizes["diffute/tiny-sd"] != 512 || sizes["diffute/tiny-sdxl"] != 1024 {
		t.Errorf("models %s", body)
	}

	req := map[string]any{"name": "defaults", "pretrained_model_name": "diffute/tiny-sd",
		"prompts": []any{map[string]any{"name": "lighthouse", "prompt": "a lighthouse at dusk"}}}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	put, err := http.NewRequest(http.MethodPut, srv.url+"/acme/default/media/inference", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	put.Header.Set("Content-Type", "application/json")
	put.Header.Set("x-api-key", key+"/default")
	put.Header.Set("Prefer", "wait=30")
	resp, err = apiClient(t).Do(put)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT with Prefer: wait=30: %s %s", resp.Status, body)
	}
	if got := resp.Header.Get("Preference-Applied"); got != "wait=30" {
		t.Errorf("Preference-Applied = %q", got)
	}
	var st httpapi.JobStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != diffute.StatusSucceeded || st.Manifest == nil || len(st.Manifest.Images["lighthouse"]) != 1 {
		t.Fatalf("status %s", body)
	}
	if p := st.Prompts[0]; p.NumImages != 1 || p.Width != 512 || p.Height != 512 {
		t.Errorf("prompt %+v, want 1 image of 512×512", p)
	}
	if r := st.Manifest.Recipes["lighthouse"]; r == nil || r.Steps != 25 || r.Width != 512 || !slices.Contains(diffute.SchedulerNames, r.Scheduler) && r.Scheduler == "" {
		t.Errorf("recipe %+v, want the model's 25 steps at 512×512", r)
	}
	img, err := http.Get(st.Manifest.Images["lighthouse"][0])
	if err != nil {
		t.Fatal(err)
	}
	defer img.Body.Close()
	cfg, err := png.DecodeConfig(img.Body)
	if err != nil || cfg.Width != 512 || cfg.Height != 512 {
		t.Errorf("image %dx%d (%v), want 512x512", cfg.Width, cfg.Height, err)
	}
}
