package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/onnx"

	"github.com/diffute/diffute/internal/syncbuf"
)

// ortLib returns the ONNX Runtime library for end-to-end tests. Locally a missing
// library skips the test; under CI=true it fails it.
func ortLib(t testing.TB) string {
	t.Helper()
	lib, err := onnx.FindLibrary("", os.Getenv)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ONNX Runtime is required in CI: %v", err)
		}
		t.Skipf("skipping: %v (run scripts/setup-ort.sh to enable)", err)
	}
	return lib
}

// testEnv returns a getenv that isolates caches and data in dir.
func testEnv(t testing.TB, lib string, extra map[string]string) func(string) string {
	t.Helper()
	cache := t.TempDir()
	vars := map[string]string{
		"DIFFUTE_ORT_LIB":  lib,
		"DIFFUTE_TINY_DIR": sharedTinyDir,
		"HF_HUB_CACHE":     filepath.Join(cache, "hf"),
		"HF_HUB_OFFLINE":   "1",
		"XDG_CONFIG_HOME":  filepath.Join(cache, "config"), // the secret key file
	}
	for k, v := range extra {
		vars[k] = v
	}
	return func(k string) string { return vars[k] }
}

// sharedTinyDir holds the tiny models for every test of the package, generated
// once; sharedBinDir the diffute binary that process tests run (buildBinary).
var sharedTinyDir, sharedBinDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "diffute-tiny-")
	if err != nil {
		panic(err)
	}
	sharedTinyDir = dir
	if sharedBinDir, err = os.MkdirTemp("", "diffute-bin-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.RemoveAll(sharedBinDir)
	os.Exit(code)
}

// lineWriter collects output and signals each complete line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newLineWriter() *lineWriter { return &lineWriter{lines: make(chan string, 64)} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf.Next(i + 1))
		select {
		case w.lines <- strings.TrimSpace(line):
		default:
		}
	}
}

// testServer is a real `diffute serve` running in-process on a free loopback port.
type testServer struct {
	url     string
	dataDir string
	getenv  func(string) string
	stderr  *syncBuffer
}

// syncBuffer collects the output of the server under test.
type syncBuffer = syncbuf.Buffer

func startServe(t testing.TB, args ...string) *testServer {
	t.Helper()
	return startServeEnv(t, nil, args...)
}

// startServeEnv is startServe with extra environment variables (a database URL,
// a media URL and its credentials: see scaleout_test.go).
func startServeEnv(t testing.TB, extra map[string]string, args ...string) *testServer {
	t.Helper()
	lib := ortLib(t)
	ts := &testServer{dataDir: t.TempDir(), stderr: &syncBuffer{}}
	ts.getenv = testEnv(t, lib, extra)
	ctx, cancel := context.WithCancel(context.Background())
	stdout := newLineWriter()
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", ts.dataDir,
		"--webhook-allow-private", "--webhook-retry-schedule", "0s,50ms,100ms,200ms"}, args...)
	done := make(chan error, 1)
	go func() { done <- run(ctx, all, ts.getenv, stdout, ts.stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	})
	select {
	case line := <-stdout.lines:
		ts.url = strings.TrimPrefix(line, "diffute listening on ")
	case err := <-done:
		t.Fatalf("serve exited early: %v\n%s", err, ts.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not start\n%s", ts.stderr.String())
	}
	return ts
}

// createKey runs `diffute keys create` and returns the key from its last line.
func createKey(t testing.TB, getenv func(string) string, dataDir, org, project string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	args := []string{"keys", "create", "--data-dir", dataDir, "--org", org}
	if project != "" {
		args = append(args, "--project", project)
	}
	if err := run(context.Background(), args, getenv, &out, &errOut); err != nil {
		t.Fatalf("keys create: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	key := lines[len(lines)-1]
	if !strings.HasPrefix(key, diffute.APIKeyPrefix) {
		t.Fatalf("keys create: last line %q is not a key", key)
	}
	return key
}

// hookReceiver is a real HTTP receiver on loopback that records webhooks.
type hookReceiver struct {
	*httptest.Server
	hooks chan received
}

func newReceiver(t testing.TB) *hookReceiver {
	t.Helper()
	r := &hookReceiver{hooks: make(chan received, 16)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		validateWebhook(t, req.Header, body) // against openapi.json's webhooks (openapi_test.go)
		r.hooks <- received{header: req.Header.Clone(), body: body}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) wait(t testing.TB, d time.Duration) received {
	t.Helper()
	select {
	case h := <-r.hooks:
		return h
	case <-time.After(d):
		t.Fatalf("no webhook within %s", d)
		return received{}
	}
}

func doJSON(t testing.TB, method, url, key string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	resp, err := apiClient(t).Do(req) // validated against openapi.json (openapi_test.go)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, data
}

func smallRequest(webhook, model string) map[string]any {
	return map[string]any{
		"name": "Houston",
		"prompts": []map[string]any{
			{"name": "Ansel_Adams", "prompt": "black and white photographs of Yosemite", "num_images": 2, "height": 64, "width": 64, "style": "photography", "steps": 2, "seed": 42},
			{"name": "Henri_Rousseau", "prompt": "a lush jungle", "num_images": 1, "height": 64, "width": 96, "style": "painting", "steps": 2},
		},
		"webhook":               webhook,
		"secret":                "4f986e48-0129-480e-996a-728ea57c020c",
		"pretrained_model_name": model,
	}
}

// samePNGPixels reports whether two PNG files decode to the same pixels.
func samePNGPixels(t *testing.T, a, b []byte) bool {
	t.Helper()
	d, sameSize := pngDiff(t, a, b)
	return sameSize && d == 0
}

// pngDiff is the largest difference of an 8-bit channel (alpha included)
// between two PNG files, and whether they have the same size at all.
func pngDiff(t *testing.T, a, b []byte) (worst int, sameSize bool) {
	t.Helper()
	ia, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	ib, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if ia.Bounds() != ib.Bounds() {
		return 0, false
	}
	for y := ia.Bounds().Min.Y; y < ia.Bounds().Max.Y; y++ {
		for x := ia.Bounds().Min.X; x < ia.Bounds().Max.X; x++ {
			r1, g1, b1, a1 := ia.At(x, y).RGBA()
			r2, g2, b2, a2 := ib.At(x, y).RGBA()
			for _, d := range []int{int(r1>>8) - int(r2>>8), int(g1>>8) - int(g2>>8), int(b1>>8) - int(b2>>8), int(a1>>8) - int(a2>>8)} {
				worst = max(worst, d, -d)
			}
		}
	}
	return worst, true
}

// TestContractEndToEnd sends a request shaped like the product page's and checks the
// webhook, the status and that every image URL opens without an API key.
func TestContractEndToEnd(t *testing.T) {
	t.Parallel()
	for _, c := range contractCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			model := c.model
			srv := c.start(t)
			key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
			recv := newReceiver(t)

			resp, body := doJSON(t, http.MethodPut, srv.url+"/acme/default/media/inference", key+"/default", smallRequest(recv.URL+"/hook", model))
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("PUT: %s %s", resp.Status, body)
			}
			var accepted struct {
				JobID  int64  `json:"job_id"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal(body, &accepted); err != nil || accepted.JobID <= 0 || accepted.JobID > diffute.MaxSeed || accepted.Status != "queued" {
				t.Fatalf("PUT answer %s (%v)", body, err)
			}
			if loc := resp.Header.Get("Location"); loc != fmt.Sprintf("/acme/default/media/inference/%d", accepted.JobID) {
				t.Errorf("Location = %q", loc)
			}

			hook := recv.wait(t, 60*time.Second)
			if got := hook.header.Get("Authorization"); got != "Bearer 4f986e48-0129-480e-996a-728ea57c020c" {
				t.Errorf("Authorization = %q", got)
			}
			if got := hook.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			var m diffute.Manifest
			if err := json.Unmarshal(hook.body, &m); err != nil {
				t.Fatalf("webhook body %s: %v", hook.body, err)
			}
			if m.Name != "Houston" || m.JobID != accepted.JobID || m.Status != diffute.StatusSucceeded {
				t.Fatalf("manifest = %+v", m)
			}
			if len(m.Images["Ansel_Adams"]) != 2 || len(m.Images["Henri_Rousseau"]) != 1 || len(m.Images) != 2 {
				t.Fatalf("images = %v", m.Images)
			}
			// The manifest says what made each prompt's images, and that is
			// enough to make the same pixels again with `diffute generate`.
			if r := m.Recipes["Ansel_Adams"]; r == nil || r.Model != model || !slices.Equal(r.Seeds, []int64{42, 43}) || r.Steps != 2 ||
				r.RNG != "torch" || r.Scheduler == "" || r.TimestepSpacing == "" || !strings.HasPrefix(r.ModelSource, "local:") || r.Width != 64 {
				t.Errorf("recipe of Ansel_Adams = %+v", r)
			}
			if r := m.Recipes["Henri_Rousseau"]; r == nil || len(r.Seeds) != 1 {
				t.Errorf("recipe of Henri_Rousseau = %+v", r)
			} else {
				out := filepath.Join(t.TempDir(), "again.png")
				args := []string{"generate", "--model", model, "--prompt", "a lush jungle, painting", "--seed", strconv.FormatInt(r.Seeds[0], 10),
					"--steps", strconv.Itoa(r.Steps), "--width", strconv.Itoa(r.Width), "--height", strconv.Itoa(r.Height),
					"--guidance", strconv.FormatFloat(r.GuidanceScale, 'g', -1, 64), "--scheduler", r.Scheduler, "--rng", r.RNG, "--out", out}
				var stdout, stderr bytes.Buffer
				if err := run(context.Background(), args, srv.getenv, &stdout, &stderr); err != nil {
					t.Fatalf("generate from the recipe: %v\n%s", err, stderr.String())
				}
				again, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := http.Get(m.Images["Henri_Rousseau"][0])
				if err != nil {
					t.Fatal(err)
				}
				served, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !samePNGPixels(t, served, again) {
					t.Errorf("the recipe did not make the same pixels again (%v)", err)
				}
			}
			for _, u := range m.Images["Henri_Rousseau"] {
				resp, err := http.Get(u)
				if err != nil {
					t.Fatal(err)
				}
				img, err := png.Decode(resp.Body)
				resp.Body.Close()
				if err != nil || resp.Header.Get("Content-Type") != "image/png" {
					t.Fatalf("GET %s: %s %v", u, resp.Header.Get("Content-Type"), err)
				}
				if b := img.Bounds(); b.Dx() != 96 || b.Dy() != 64 {
					t.Errorf("image is %v, want 96x64", b)
				}
				resp, err = http.Get(tamper(t, u))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("tampered URL: %s, want 403", resp.Status)
				}
			}

			resp, body = doJSON(t, http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d", srv.url, accepted.JobID), key, nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"succeeded"`) {
				t.Fatalf("GET status: %s %s", resp.Status, body)
			}
			if strings.Contains(string(body), "4f986e48") {
				t.Errorf("status leaks the webhook secret: %s", body)
			}
			// Another organization's key sees nothing.
			other := createKey(t, srv.getenv, srv.dataDir, "globex", "")
			resp, _ = doJSON(t, http.MethodGet, fmt.Sprintf("%s/acme/default/media/inference/%d", srv.url, accepted.JobID), other, nil)
			if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
				t.Errorf("other tenant: %s, want 403 or 404", resp.Status)
			}
			resp, _ = doJSON(t, http.MethodGet, fmt.Sprintf("%s/globex/default/media/inference/%d", srv.url, accepted.JobID), other, nil)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("other tenant's own path: %s, want 404", resp.Status)
			}
		})
	}
}

// TestDemo runs `diffute demo`, the README's main job, and checks its images.
func TestDemo(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	out := filepath.Join(t.TempDir(), "diffute-demo")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"demo", "--out-dir", out}, testEnv(t, lib, nil), &stdout, &stderr); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	text := stdout.String()
	for _, want := range []string{"202 Accepted", "Webhook received", `"Ansel_Adams"`, "Saved 9 images"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "4f986e48-0129-480e-996a-728ea57c020c") {
		t.Errorf("demo prints the webhook secret unmasked")
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.png"))
	if len(files) != 9 {
		t.Fatalf("demo saved %d PNGs, want 9", len(files))
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(bufio.NewReader(f))
	if err != nil || cfg.Width != 768 || cfg.Height != 1024 {
		t.Fatalf("demo image: %+v %v, want 768x1024", cfg, err)
	}
}
