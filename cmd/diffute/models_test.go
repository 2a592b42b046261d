package main

import (
	"bytes"
	"context"
	"github.com/diffute/diffute/internal/fixtures"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute/hub/hubtest"
	"github.com/diffute/diffute/tinymodel"
)

// fixturesDir is the reference data folder, absolute (package internal/fixtures).
func fixturesDir(t *testing.T) string {
	t.Helper()
	fixtures.Path(t, "checkpoints")
	abs, _ := filepath.Abs(fixtures.Path(t))
	return abs
}

// TestModelSourcesServedAndResolved covers what --models accepts and what
// Resolve hands the engine: aliases, local folders and .safetensors files the
// operator named, tiny models and Hub repos, and the refusal of any path the
// operator did not name.
func TestModelSourcesServedAndResolved(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	single := filepath.Join(dir, "dreamshaper.safetensors")
	folder := filepath.Join(dir, "my-sd15")
	other := filepath.Join(dir, "other.safetensors")
	for _, f := range []string{single, other, filepath.Join(dir, "notes.txt")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(folder, 0o755)
	src, err := newModelSource(testEnv(t, "", nil))
	if err != nil {
		t.Fatal(err)
	}
	names, err := src.served("mymodel=" + single + ", " + folder + ",diffute/tiny-sd, fast=diffute/tiny-sdxl-turbo, acme/not-pulled")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"mymodel", folder, "diffute/tiny-sd", "fast", "acme/not-pulled"}; !slices.Equal(names, want) {
		t.Fatalf("served %v, want %v", names, want)
	}
	if len(src.unavailable) != 1 || !strings.Contains(src.unavailable[0], "acme/not-pulled") || !strings.Contains(src.unavailable[0], "diffute models pull acme/not-pulled") {
		t.Errorf("unavailable %q: want the uncached repo reported with the pull command", src.unavailable)
	}
	ctx := context.Background()
	for name, want := range map[string]string{"mymodel": single, folder: folder} {
		if got, err := src.Resolve(ctx, name); err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v; want %s", name, got, err, want)
		}
	}
	if got, err := src.Resolve(ctx, "fast"); err != nil || !strings.HasSuffix(got, filepath.FromSlash(tinymodel.NameSDXLTurbo)) {
		t.Errorf("Resolve(fast) = %q, %v; want the tiny SDXL Turbo folder", got, err)
	}
	// Paths nobody served are refused without being opened, whatever their form.
	for _, name := range []string{single, other, "/etc/passwd", "../" + filepath.Base(other), "./x", "~/models/a.safetensors", "c:\\models\\a", "x.ckpt"} {
		_, err := src.Resolve(ctx, name)
		if err == nil || !strings.Contains(err.Error(), "local path this deployment does not serve") || strings.Contains(err.Error(), "\n") {
			t.Errorf("Resolve(%q): %v; want a one-line refusal", name, err)
		}
	}
	if _, err := src.Resolve(ctx, "acme/not-pulled"); err == nil || !strings.Contains(err.Error(), "diffute models pull acme/not-pulled") {
		t.Errorf("Resolve of an uncached repo: %v", err)
	}
	if _, err := src.Resolve(ctx, "no spaces allowed"); err == nil || !strings.Contains(err.Error(), "neither a served model nor a Hugging Face repository id") {
		t.Errorf("Resolve of a nonsense name: %v", err)
	}

	// A served path that disappears is reported by name at resolve time.
	os.Remove(single)
	if _, err := src.Resolve(ctx, "mymodel"); err == nil || !strings.Contains(err.Error(), single) {
		t.Errorf("Resolve after the file went away: %v", err)
	}

	for _, c := range []struct{ flag, want string }{
		{"gone=" + filepath.Join(dir, "gone.safetensors"), filepath.Join(dir, "gone.safetensors") + " does not exist"},
		{"notes=" + filepath.Join(dir, "notes.txt"), "neither a model folder nor a .safetensors checkpoint"},
		{"a=diffute/tiny-sd,a=diffute/tiny-sdxl", `"a" is listed twice`},
		{"=diffute/tiny-sd", "want MODEL or NAME=MODEL"},
		{"x=not a repo", "is not a local path, a tiny model or a Hugging Face repository id"},
	} {
		s2, _ := newModelSource(testEnv(t, "", nil))
		if _, err := s2.served(c.flag); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("--models %s: %v; want one line containing %q", c.flag, err, c.want)
		}
	}
}

// TestModelsPullDiffusersThenListAndServe pulls a diffusers-layout repo (the
// sd21v fixture behind the fake Hub) with `diffute models pull`, then checks
// models list describes it and the default served set includes it.
func TestModelsPullDiffusersThenListAndServe(t *testing.T) {
	t.Parallel()
	fx := fixturesDir(t)
	repo, err := hubtest.RepoFromDir(filepath.Join(fx, "checkpoints", "sd21v"))
	if err != nil {
		t.Fatal(err)
	}
	h := hubtest.New(t, map[string]hubtest.Repo{"acme/sd21-tiny": repo})
	cache := t.TempDir()
	getenv := testEnv(t, "", map[string]string{"HF_ENDPOINT": h.URL, "HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": ""})
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"models", "pull", "acme/sd21-tiny"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("models pull: %v\n%s", err, stderr.String())
	}
	snapshot := strings.TrimSpace(stdout.String())
	if _, err := os.Stat(filepath.Join(snapshot, "unet", "diffusion_pytorch_model.fp16.safetensors")); err != nil {
		t.Fatalf("fp16 UNet not pulled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(snapshot, "unet", "diffusion_pytorch_model.safetensors")); err == nil {
		t.Error("the fp32 UNet was pulled beside the fp16 one")
	}
	if err := run(context.Background(), []string{"models", "pull", "acme/sd21-tiny", "--format", "pt"}, getenv, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("--format pt: %v", err)
	}

	stdout.Reset()
	if err := run(context.Background(), []string{"models", "list"}, getenv, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(l, "acme/sd21-tiny") {
			line = l
		}
	}
	if f := strings.Fields(line); len(f) < 6 || f[1] != "sd2" || f[2] != "diffusers" || f[3] != "F16" || f[5] != "MB" {
		t.Errorf("models list line %q: want family sd2, format diffusers, precision F16 and a size\n%s", line, stdout.String())
	}

	src, err := newModelSource(testEnv(t, "", map[string]string{"HF_HUB_CACHE": cache}))
	if err != nil {
		t.Fatal(err)
	}
	names, err := src.served("")
	if err != nil || !slices.Contains(names, "acme/sd21-tiny") || !slices.Contains(names, tinymodel.NameSD) {
		t.Errorf("default served %v (%v): want the tiny models and the cached diffusers repo", names, err)
	}
	if dir, err := src.Resolve(context.Background(), "acme/sd21-tiny"); err != nil || dir != snapshot {
		t.Errorf("Resolve = %q, %v; want the snapshot %s", dir, err, snapshot)
	}
}

func TestDescribeModel(t *testing.T) {
	t.Parallel()
	fx := fixturesDir(t)
	for path, want := range map[string]string{
		filepath.Join(fx, "checkpoints", "sd15.safetensors"): "sd1 single-file F16 3.7 MB",
		filepath.Join(fx, "checkpoints", "sdxl.safetensors"): "sdxl single-file F16 3.5 MB",
		filepath.Join(fx, "checkpoints", "sd15"):             "sd1 diffusers F32 7.2 MB",
		filepath.Join(fx, "checkpoints", "sd21v"):            "sd2 diffusers F16 1.9 MB",
	} {
		if got := strings.Join(strings.Fields(describeModel(path).String()), " "); got != want {
			t.Errorf("%s: %q, want %q", filepath.Base(path), got, want)
		}
	}
}

// TestServeAliasAndUnlistedPath runs the real server with an alias to a tiny
// model and a served local file: a job under the alias completes, and a path
// the operator did not list is refused at the API with the field named.
func TestServeAliasAndUnlistedPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	listed := filepath.Join(dir, "listed.safetensors")
	os.WriteFile(listed, []byte("x"), 0o644)
	srv := startServe(t, "--models", "fast="+tinymodel.NameSD+","+listed+",acme/never-pulled")
	if log := srv.stderr.String(); !strings.Contains(log, "model not found") || !strings.Contains(log, "diffute models pull acme/never-pulled") {
		t.Errorf("the uncached model was not reported at start:\n%s", log)
	}
	key := createKey(t, srv.getenv, srv.dataDir, "acme", "default")
	recv := newReceiver(t)
	path := srv.url + "/acme/default/media/inference"

	for _, model := range []string{filepath.Join(dir, "unlisted.safetensors"), "/etc/passwd", tinymodel.NameSD} {
		resp, body := doJSON(t, "PUT", path, key, smallRequest(recv.URL, model))
		if resp.StatusCode != 422 || !strings.Contains(string(body), "pretrained_model_name") || !strings.Contains(string(body), "fast") {
			t.Errorf("model %s: %d %s; want 422 naming pretrained_model_name and the served list", model, resp.StatusCode, body)
		}
	}
	resp, body := doJSON(t, "PUT", path, key, smallRequest(recv.URL, "fast"))
	if resp.StatusCode != 202 {
		t.Fatalf("alias: %d %s", resp.StatusCode, body)
	}
	hook := recv.wait(t, 60*time.Second)
	if !strings.Contains(string(hook.body), `"images"`) || !strings.Contains(string(hook.body), "Ansel_Adams") {
		t.Errorf("webhook for the aliased model: %s", hook.body)
	}

	// The served file is not a checkpoint: its job fails with the loader's
	// message naming it, and the server goes on serving.
	resp, body = doJSON(t, "PUT", path, key, smallRequest(recv.URL, listed))
	if resp.StatusCode != 202 {
		t.Fatalf("listed file: %d %s", resp.StatusCode, body)
	}
	hook = recv.wait(t, 60*time.Second)
	if !strings.Contains(string(hook.body), `"failed"`) || !strings.Contains(string(hook.body), "listed.safetensors") {
		t.Errorf("webhook for the corrupt checkpoint: %s; want status failed and the file named", hook.body)
	}
	resp, body = doJSON(t, "PUT", path, key, smallRequest(recv.URL, "fast"))
	if resp.StatusCode != 202 {
		t.Fatalf("after the failed load: %d %s", resp.StatusCode, body)
	}
	if hook = recv.wait(t, 60*time.Second); !strings.Contains(string(hook.body), `"succeeded"`) {
		t.Errorf("a job after the failed load: %s", hook.body)
	}
}

// TestModelsListServed describes what a --models value serves, single files
// and aliases included.
func TestModelsListServed(t *testing.T) {
	t.Parallel()
	fx := fixturesDir(t)
	single := filepath.Join(fx, "checkpoints", "sd15.safetensors")
	folder := filepath.Join(fx, "checkpoints", "sdxl")
	var stdout, stderr bytes.Buffer
	args := []string{"models", "list", "--models", "dream=" + single + "," + folder + ",acme/absent"}
	if err := run(context.Background(), args, testEnv(t, "", nil), &stdout, &stderr); err != nil {
		t.Fatalf("models list: %v\n%s", err, stderr.String())
	}
	want := map[string]string{
		"dream":       "dream sd1 single-file F16 3.7 MB " + single,
		folder:        folder + " sdxl diffusers F32 6.9 MB " + folder,
		"acme/absent": "acme/absent - - - - unavailable: model acme/absent is not in the Hugging Face cache",
	}
	lines := strings.Split(stdout.String(), "\n")
	for name, w := range want {
		found := false
		for _, l := range lines {
			if got := strings.Join(strings.Fields(l), " "); strings.HasPrefix(l, name+" ") && strings.HasPrefix(got, w) {
				found = true
			}
		}
		if !found {
			t.Errorf("no line starting %q in:\n%s", w, stdout.String())
		}
	}
}
