package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestBadInputAgainstRealServer sends malformed requests to the real server (SQLite,
// River, engine) and expects a 4xx problem naming the field, never a 5xx, nothing
// stored, and a healthy server afterwards that still accepts a good request.
func TestBadInputAgainstRealServer(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	revoked := createKey(t, srv.getenv, srv.dataDir, "acme", "")
	var out, errOut strings.Builder
	if err := run(t.Context(), []string{"keys", "revoke", "2", "--data-dir", srv.dataDir}, srv.getenv, &out, &errOut); err != nil {
		t.Fatalf("keys revoke: %v %s", err, errOut.String())
	}
	good := `{"name":"n","pretrained_model_name":"diffute/tiny-sd","prompts":[{"name":"a","prompt":"p","num_images":1,"height":64,"width":64}]}`
	path := srv.url + "/acme/default/media/inference"
	tests := []struct {
		name, key, ctype, body string
		status                 int
		field                  string
	}{
		{"bad JSON", key, "application/json", `{"name":`, 400, ""},
		{"wrong type", key, "application/json", strings.Replace(good, `"num_images":1`, `"num_images":"1"`, 1), 422, "prompts[0].num_images"},
		{"unknown field", key, "application/json", strings.Replace(good, `"name":"n"`, `"name":"n","colour":1`, 1), 422, "colour"},
		{"unsafe prompt name", key, "application/json", strings.Replace(good, `"name":"a"`, `"name":"../a"`, 1), 422, "prompts[0].name"},
		{"huge number", key, "application/json", strings.Replace(good, `"num_images":1`, `"num_images":1e400`, 1), 422, "prompts[0].num_images"},
		{"negative size", key, "application/json", strings.Replace(good, `"height":64`, `"height":-64`, 1), 422, "prompts[0].height"},
		{"unknown model", key, "application/json", strings.Replace(good, "diffute/tiny-sd", "stabilityai/nothing", 1), 422, "pretrained_model_name"},
		{"bad webhook", key, "application/json", strings.Replace(good, `"name":"n"`, `"name":"n","webhook":"ftp://x"`, 1), 422, "webhook"},
		{"oversize body", key, "application/json", `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, ""},
		{"wrong content type", key, "text/plain", good, 415, "Content-Type"},
		{"no key", "", "application/json", good, 401, "x-api-key"},
		{"bad key", "dfk_nope", "application/json", good, 401, "x-api-key"},
		{"revoked key", revoked, "application/json", good, 401, "x-api-key"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodPut, path, strings.NewReader(tt.body))
		req.Header.Set("Content-Type", tt.ctype)
		if tt.key != "" {
			req.Header.Set("x-api-key", tt.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var problem struct {
			Status int    `json:"status"`
			Field  string `json:"field"`
		}
		json.NewDecoder(resp.Body).Decode(&problem)
		resp.Body.Close()
		if resp.StatusCode != tt.status || problem.Status != tt.status || problem.Field != tt.field ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s: %s field %q (%s), want %d field %q", tt.name, resp.Status, problem.Field, resp.Header.Get("Content-Type"), tt.status, tt.field)
		}
	}
	resp, _ := doJSON(t, http.MethodGet, srv.url+"/healthz", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after bad input: %s", resp.Status)
	}
	resp, _ = doJSON(t, http.MethodGet, srv.url+"/readyz", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz after bad input: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodPut, path, strings.NewReader(good))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("good request after bad input: %s", resp.Status)
	}
}
