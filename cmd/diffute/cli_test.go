package main

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffute/diffute/hub/hubtest"
	"github.com/diffute/diffute/tinymodel"
)

// TestGenerate writes one image with `diffute generate` and checks it is reproducible
// from its seed.
func TestGenerate(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	getenv := testEnv(t, lib, nil)
	dir := t.TempDir()
	gen := func(name string, seed string, extra ...string) []byte {
		out := filepath.Join(dir, name)
		var stdout, stderr bytes.Buffer
		args := append([]string{"generate", "--model", "diffute/tiny-sd", "--prompt", "a red fox", "--seed", seed,
			"--steps", "3", "--width", "64", "--height", "72", "--out", out}, extra...)
		if err := run(context.Background(), args, getenv, &stdout, &stderr); err != nil {
			t.Fatalf("generate: %v\n%s", err, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), "wrote "+out) {
			t.Errorf("generate said %q", stdout.String())
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	a, b, c := gen("a.png", "7"), gen("b.png", "7"), gen("c.png", "8")
	if !bytes.Equal(a, b) {
		t.Error("same seed, different images")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds, same image")
	}
	// --rng torch is the default; cuda draws other noise; seed+2^32 is seed
	// under torch (low 32 bits).
	if torch := gen("t.png", "7", "--rng", "torch"); !bytes.Equal(a, torch) {
		t.Error("--rng torch differs from the default")
	}
	if cuda := gen("u.png", "7", "--rng", "cuda"); bytes.Equal(a, cuda) {
		t.Error("--rng cuda gives the torch image")
	}
	if high := gen("h.png", "4294967303"); !bytes.Equal(a, high) {
		t.Error("seed 7+2^32 differs from seed 7 under --rng torch")
	}
	img, err := png.Decode(bytes.NewReader(a))
	if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 72 {
		t.Fatalf("generated image: %v %v", img.Bounds(), err)
	}
}

// TestCLIErrorsAreOneLine checks bad input to the CLI gets one line naming the fix.
func TestCLIErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	getenv := testEnv(t, lib, nil)
	dataDir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--prompt", "x", "--out", filepath.Join(dataDir, "x.png"), "--width", "65"}, "--width: must be a multiple of 8"},
		{[]string{"generate", "--prompt", "x"}, "--out FILE is required"},
		{[]string{"generate", "--prompt", "x", "--out", "x.gif"}, "use .png, .jpg or .webp"},
		{[]string{"generate", "--model", "nobody/nothing", "--prompt", "x", "--out", filepath.Join(dataDir, "y.png")}, "diffute models pull nobody/nothing"},
		{[]string{"keys", "create", "--data-dir", dataDir}, "--org is required"},
		{[]string{"keys", "revoke", "--data-dir", dataDir}, "name the key's ID"},
		{[]string{"serve", "--data-dir", dataDir, "--database-url", "mysql://x"}, "want sqlite:PATH"},
		{[]string{"models", "pull"}, "name a model"},
		{[]string{"generate", "--prompt", "x", "--out", filepath.Join(dataDir, "z.png"), "--rng", "mt"}, `--rng "mt": want one of torch, cuda`},
		{[]string{"serve", "--data-dir", dataDir, "--rng", "gpu"}, `--rng "gpu": want one of torch, cuda`},
		{[]string{"serve", "--data-dir", dataDir, "--precision", "fp8"}, `--precision "fp8": want one of auto, fp32, fp16`},
		{[]string{"generate", "--prompt", "x", "--out", filepath.Join(dataDir, "z.png"), "--precision", "half"}, `--precision "half": want one of auto, fp32, fp16`},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, getenv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("diffute %s: error %v, want one line containing %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"nonsense"}, getenv, &stdout, &stderr); !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "unknown command") {
		t.Errorf("unknown command: %v %q", err, stderr.String())
	}
}

// TestModelsPullThenGenerate pulls a model from a local fake Hugging Face hub into
// the standard cache with `diffute models pull` and generates from it by repo name.
func TestModelsPullThenGenerate(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	src := t.TempDir()
	// The ONNX layout: pulling and serving an Optimum export keeps working.
	if err := tinymodel.WriteWith(src, tinymodel.NameSDXL, tinymodel.WriteOptions{ONNX: true}); err != nil {
		t.Fatal(err)
	}
	repo, err := hubtest.RepoFromDir(src)
	if err != nil {
		t.Fatal(err)
	}
	h := hubtest.New(t, map[string]hubtest.Repo{"acme/sdxl-mini": repo})
	cache := t.TempDir()
	getenv := testEnv(t, lib, map[string]string{"HF_ENDPOINT": h.URL, "HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": ""})

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"models", "pull", "acme/sdxl-mini"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("models pull: %v\n%s", err, stderr.String())
	}
	snapshot := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(snapshot, filepath.Join(cache, "models--acme--sdxl-mini", "snapshots")) {
		t.Fatalf("pull printed %q, want a snapshot in the HF cache", snapshot)
	}
	if _, err := os.Stat(filepath.Join(snapshot, "vae_encoder")); err == nil {
		t.Error("pull fetched vae_encoder, which the pipeline does not need")
	}

	stdout.Reset()
	if err := run(context.Background(), []string{"models", "list"}, getenv, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "acme/sdxl-mini") || !strings.Contains(stdout.String(), "onnx") {
		t.Errorf("models list:\n%s", stdout.String())
	}

	offline := testEnv(t, lib, map[string]string{"HF_HUB_CACHE": cache})
	out := filepath.Join(t.TempDir(), "img.png")
	stdout.Reset()
	args := []string{"generate", "--model", "acme/sdxl-mini", "--prompt", "a castle", "--steps", "2", "--width", "64", "--height", "64", "--out", out}
	if err := run(context.Background(), args, offline, &stdout, &stderr); err != nil {
		t.Fatalf("generate from the pulled model, offline: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal(err)
	}
}
