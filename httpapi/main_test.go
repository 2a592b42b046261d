package httpapi_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
	"github.com/diffute/diffute/media"

	"github.com/diffute/diffute/internal/syncbuf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	org     = "acme"
	project = "web-app"
)

var servedModels = []string{"tiny-sd", "stabilityai/stable-diffusion-xl-base-1.0"}

// testBundle is one running API server over fakes and a real disk media store.
type testBundle struct {
	srv    *httptest.Server
	api    *httpapi.Server
	mem    *memory
	store  *fakeStore
	disk   *media.Disk
	signer *media.Signer
	key    string // valid for org, every project
	logs   *syncBuffer
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	mem := newMemory()
	signer := &media.Signer{Key: make([]byte, media.KeySize), BaseURL: "http://placeholder.invalid"}
	rand.Read(signer.Key)
	disk, err := media.NewDisk(t.TempDir(), signer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	logs := &syncBuffer{}
	store := mem.store()
	api := &httpapi.Server{
		Store:    store,
		Keys:     mem.keyStore(),
		Media:    disk,
		Tenancy:  mem.tenancy(store),
		Webhooks: &fakeWebhooks{secrets: map[string][]diffute.WebhookSecret{}, messages: map[int64][]diffute.WebhookMessage{}},
		Signer:   signer,
		Models:   servedModels,
		Catalog:  testCatalog,
		JobEnds:  &httpapi.JobEnds{},
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	// Set before the first request, so no handler reads it concurrently.
	signer.BaseURL = srv.URL
	return &testBundle{
		srv: srv, api: api, mem: mem, store: store, disk: disk, signer: signer, logs: logs,
		key: mem.addKey(diffute.APIKey{ID: 1, Org: org, Name: "default"}),
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to log into.
type syncBuffer = syncbuf.Buffer

// do sends a request; body may be a string, []byte, io.Reader or nil.
func (b *testBundle) do(t *testing.T, method, path string, header map[string]string, body any) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(v)
	case []byte:
		r = bytes.NewReader(v)
	case io.Reader:
		r = v
	default:
		t.Fatalf("bad body type %T", body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// put sends an inference request with the bundle's key.
func (b *testBundle) put(t *testing.T, body any) (*http.Response, []byte) {
	t.Helper()
	return b.do(t, http.MethodPut, "/"+org+"/"+project+"/media/inference",
		map[string]string{"Content-Type": "application/json", "x-api-key": b.key + "/default"}, body)
}

func (b *testBundle) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	return b.do(t, http.MethodGet, path, map[string]string{"x-api-key": b.key}, nil)
}

// exampleRequest is the product page's example request, with a served model and a
// webhook URL filled in.
func exampleRequest() map[string]any {
	prompt := func(name, text, style string) map[string]any {
		return map[string]any{"name": name, "prompt": text, "num_images": 3, "height": 1024, "width": 768, "style": style}
	}
	return map[string]any{
		"prompts": []any{
			prompt("Ansel_Adams", "A series of black and white photographs capturing the beauty and grandeur of Yosemite National Park", "photography in the style of Ansel Adams"),
			prompt("Henri_Rousseau", "A painting of a lush jungle scene with a variety of exotic plants and animals", "painting in the style of Henri Rousseau"),
			prompt("Rachel_Ruysch", "Still life painting featuring a variety of flowers and plants found in a garden", "painting in the style of Rachel Ruysch"),
		},
		"webhook":               "https://hooks.example.com/diffute",
		"secret":                "4f986e48-0129-480e-996a-728ea57c020c",
		"pretrained_model_name": "stabilityai/stable-diffusion-xl-base-1.0",
		"name":                  "Houston",
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeProblem(t *testing.T, resp *http.Response, body []byte) httpapi.Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json; body %s", ct, body)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body %q: %v", body, err)
	}
	if p.Status != resp.StatusCode {
		t.Errorf("problem status %d, response status %d", p.Status, resp.StatusCode)
	}
	if p.Type == "" || p.Title == "" || p.Code == "" {
		t.Errorf("problem %+v lacks type, title or code", p)
	}
	return p
}
