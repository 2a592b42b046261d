package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffute/diffute"
)

// TestSubmitWaitDownload runs `diffute submit --wait --download` against a real
// server and checks the progress bars, the printed manifest and the saved images.
func TestSubmitWaitDownload(t *testing.T) {
	t.Parallel()
	srv := startServe(t)
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	dir := t.TempDir()
	file := filepath.Join(dir, "request.json")
	b, _ := json.Marshal(smallRequest("", "diffute/tiny-sd"))
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "images")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"submit", file, "--url", srv.url + "/acme/default", "--key", key, "--wait", "--download", out},
		srv.getenv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("submit: %v\n%s", err, stderr.String())
	}
	var m diffute.Manifest
	if err := json.Unmarshal(stdout.Bytes(), &m); err != nil || m.Status != diffute.StatusSucceeded || len(m.Images["Ansel_Adams"]) != 2 {
		t.Fatalf("stdout is not the manifest: %v\n%s", err, stdout.String())
	}
	for _, want := range []string{"Ansel_Adams    [##############################] 100% 2/2 images", "Henri_Rousseau [", "saved 3 images"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.png"))
	if len(files) != 3 {
		t.Fatalf("saved %v, want 3 PNGs", files)
	}
	f, err := os.Open(filepath.Join(out, "Henri_Rousseau_1.png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if cfg, err := png.DecodeConfig(f); err != nil || cfg.Width != 96 || cfg.Height != 64 {
		t.Errorf("Henri_Rousseau_1.png: %+v %v", cfg, err)
	}

	// Without --wait it prints the job ID; a bad request is one line naming the field.
	stdout.Reset()
	if err := run(context.Background(), []string{"submit", file, "--url", srv.url, "--org", "acme", "--key", key}, srv.getenv, &stdout, &stderr); err != nil {
		t.Fatalf("submit without --wait: %v", err)
	}
	if strings.TrimSpace(stdout.String()) == "" || strings.Contains(stdout.String(), "\n\n") {
		t.Errorf("stdout = %q, want the job ID", stdout.String())
	}
	bad := strings.Replace(string(b), `"height":64`, `"height":65`, 1)
	os.WriteFile(file, []byte(bad), 0o644)
	err = run(context.Background(), []string{"submit", file, "--url", srv.url + "/acme/default", "--key", key}, srv.getenv, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "prompts[0].height") || strings.Contains(err.Error(), "\n") {
		t.Errorf("bad request: %v, want one line with 422 and the field", err)
	}
	err = run(context.Background(), []string{"submit", file, "--url", srv.url}, srv.getenv, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--key") {
		t.Errorf("missing key: %v", err)
	}
}
