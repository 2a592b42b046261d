package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute/httpapi"
)

// nodeTools returns node and npm. The test installs neither: scripts/test.sh's
// environment has them (they also fetch ONNX Runtime). Locally their absence
// skips; under CI=true it fails.
func nodeTools(t *testing.T) (node, npm string) {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode == nil && errNpm == nil {
		return node, npm
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Node.js and npm are required in CI (apt-get install -y nodejs npm)")
	}
	t.Skip("skipping: node or npm not on PATH")
	return "", ""
}

// openAIClientDir copies the Node project of testdata/openai-client into a
// temporary folder and installs its locked dependencies there with npm ci.
func openAIClientDir(t *testing.T, npm string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "generate.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "openai-client", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--prefer-offline")
	cmd.Dir, cmd.Env = dir, nodeEnv(nil)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	return dir
}

// nodeEnv is this process's environment without OPENAI_* variables (the
// client would read a base URL, organization or project from them), plus
// extra.
func nodeEnv(extra map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENAI_") {
			env = append(env, kv)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// clientFailure is how one call of the openai client failed, as generate.mjs
// reports it.
type clientFailure struct {
	Class      string  `json:"class"`
	IsAPIError bool    `json:"isAPIError"`
	Status     int     `json:"status"`
	Type       *string `json:"type"`
	Param      *string `json:"param"`
	Code       *string `json:"code"`
	Message    string  `json:"message"`
}

// TestOpenAIClientEndToEnd runs the official openai npm client against the
// real server on the tiny models: images by URL and in base64, the default
// model and size, the client's error classes for bad input, a bad key and an
// unknown model, and the images counted in the project's usage. Two more
// requests go through the OpenAPI-validating client.
func TestOpenAIClientEndToEnd(t *testing.T) {
	t.Parallel()
	node, npm := nodeTools(t)
	srv := startServe(t, "--models", "diffute/tiny-sd,diffute/tiny-sdxl")
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "") // every project: the default one is used
	dir := openAIClientDir(t, npm)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "generate.mjs")
	cmd.Dir = dir
	cmd.Env = nodeEnv(map[string]string{"DIFFUTE_BASE_URL": srv.url + "/v1", "DIFFUTE_API_KEY": key, "DIFFUTE_MODEL": "diffute/tiny-sdxl"})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node generate.mjs: %v\nstdout: %s\nstderr: %s\nserver: %s", err, stdout.String(), stderr.String(), srv.stderr.String())
	}
	var got struct {
		URL struct {
			Created      int64    `json:"created"`
			Size         string   `json:"size"`
			OutputFormat string   `json:"output_format"`
			URLs         []string `json:"urls"`
		} `json:"url"`
		B64 struct {
			Size   string   `json:"size"`
			Images []string `json:"images"`
		} `json:"b64"`
		Models []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			OwnedBy string `json:"owned_by"`
		} `json:"models"`
		Errors  map[string]clientFailure `json:"errors"`
		Classes map[string]string        `json:"classes"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("generate.mjs output %q: %v", stdout.String(), err)
	}

	if len(got.Models) != 2 || got.Models[0].ID != "diffute/tiny-sd" || got.Models[1].ID != "diffute/tiny-sdxl" ||
		got.Models[0].Object != "model" || got.Models[0].OwnedBy != "diffute" {
		t.Fatalf("client.models.list() gave %+v, want the two served models", got.Models)
	}
	if len(got.URL.URLs) != 2 || got.URL.Size != "64x64" || got.URL.OutputFormat != "png" ||
		got.URL.Created < time.Now().Add(-10*time.Minute).Unix() {
		t.Fatalf("url answer %+v", got.URL)
	}
	for i, u := range got.URL.URLs {
		if !strings.HasPrefix(u, srv.url+"/media/") {
			t.Fatalf("url %d = %q, want one under %s/media/", i, u, srv.url)
		}
		resp, err := http.Get(u) // signed: no key needed
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("GET url %d: %s %s", i, resp.Status, resp.Header.Get("Content-Type"))
		}
		checkPNG(t, data, 64, 64)
	}
	if len(got.B64.Images) != 1 || got.B64.Size != "96x64" {
		t.Fatalf("b64_json answer: %d images, size %q", len(got.B64.Images), got.B64.Size)
	}
	data, err := base64.StdEncoding.DecodeString(got.B64.Images[0])
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, data, 96, 64)

	for name, want := range map[string]struct {
		class       string
		status      int
		param, code string
	}{
		"n0":    {got.Classes["BadRequestError"], 400, "n", "integer_below_min_value"},
		"size":  {got.Classes["BadRequestError"], 400, "size", "invalid_value"},
		"model": {got.Classes["NotFoundError"], 404, "model", "model_not_found"},
		"key":   {got.Classes["AuthenticationError"], 401, "", "invalid_api_key"},
	} {
		f := got.Errors[name]
		if want.class == "" || f.Class != want.class || !f.IsAPIError || f.Status != want.status ||
			deref(f.Param) != want.param || deref(f.Code) != want.code || deref(f.Type) != "invalid_request_error" || f.Message == "" {
			t.Errorf("%s: the client raised %+v (param %q code %q), want %s %d param %q code %q",
				name, f, deref(f.Param), deref(f.Code), want.class, want.status, want.param, want.code)
		}
	}

	// The same API through the OpenAPI-validating client: a bad request and a
	// good one, each checked against openapi.json.
	before := validated.Load()
	resp, body := postImages(t, srv.url, key, map[string]any{"prompt": "p", "n": 100})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"param":"n"`) {
		t.Errorf("n=100: %s %s", resp.Status, body)
	}
	resp, body = postImages(t, srv.url, key, map[string]any{"prompt": "a lighthouse", "size": "64x64", "response_format": "b64_json", "model": "diffute/tiny-sd"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("b64_json: %s %s", resp.Status, body)
	}
	var direct httpapi.OpenAIImagesResponse
	if err := json.Unmarshal(body, &direct); err != nil || len(direct.Data) != 1 {
		t.Fatalf("b64_json answer %.300s: %v", body, err)
	}
	resp, body = postImages(t, srv.url, key, map[string]any{"prompt": "a lighthouse", "size": "64x64", "output_format": "jpeg"})
	var jpeg httpapi.OpenAIImagesResponse
	if err := json.Unmarshal(body, &jpeg); err != nil || resp.StatusCode != http.StatusOK || jpeg.OutputFormat != "jpeg" ||
		len(jpeg.Data) != 1 || !strings.Contains(jpeg.Data[0].URL, ".jpg?") {
		t.Fatalf("url, jpeg: %s %s", resp.Status, body)
	}
	// At least these three: tests running in parallel add theirs to the count.
	if n := validated.Load() - before; n < 3 {
		t.Errorf("%d exchanges validated, want at least 3", n)
	}

	// Every image is metered in the key's default project: 2 + 1 + 1 + 1.
	var usage httpapi.UsageResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := doJSON(t, http.MethodGet, srv.url+"/acme/"+httpapi.DefaultOpenAIProject+"/usage", key, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("usage: %s %s", resp.Status, body)
		}
		if err := json.Unmarshal(body, &usage); err != nil {
			t.Fatal(err)
		}
		if usage.Total.Images >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if usage.Total.Images != 5 || usage.Total.PixelSteps <= 0 {
		t.Errorf("usage total %+v, want 5 images", usage.Total)
	}
}

// postImages sends POST /v1/images/generations through apiClient.
func postImages(t *testing.T, base, key string, body map[string]any) (*http.Response, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/v1/images/generations", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := apiClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, data
}

func checkPNG(t *testing.T, data []byte, w, h int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("image %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
