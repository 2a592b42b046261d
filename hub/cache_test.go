package hub_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/diffute/diffute/hub"
	"github.com/diffute/diffute/hub/hubtest"
)

// writePythonCache lays files out as huggingface_hub does: blobs named by
// etag, snapshot entries as relative symlinks, refs/main holding the commit.
// Unneeded files are included too, as snapshot_download would fetch them.
func writePythonCache(t *testing.T, cacheDir, repo, commit string, files map[string]hubtest.File) string {
	t.Helper()
	repoDir := filepath.Join(cacheDir, "models--"+strings.ReplaceAll(repo, "/", "--"))
	snap := filepath.Join(repoDir, "snapshots", commit)
	for p, f := range files {
		etag := hubtest.GitBlobID(f.Content)
		if f.LFS {
			etag = hubtest.SHA256(f.Content)
		}
		blob := filepath.Join(repoDir, "blobs", etag)
		link := filepath.Join(snap, filepath.FromSlash(p))
		for _, d := range []string{filepath.Dir(blob), filepath.Dir(link)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(blob, f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(filepath.Dir(link), blob)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(rel, link); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(repoDir, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repoDir, "refs", "main"), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestPythonCacheReusedWithoutNetwork(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	files := b.files[sdxlRepo]
	want := writePythonCache(t, b.client.CacheDir, sdxlRepo, hubtest.CommitOf(files), files)

	dir := b.pull(t, sdxlRepo, "main")
	if dir != want {
		t.Errorf("Pull gave %s, want the Python snapshot %s", dir, want)
	}
	if snap, err := b.client.Snapshot(sdxlRepo, ""); err != nil || snap != want {
		t.Errorf("Snapshot = %s, %v", snap, err)
	}
	if reqs := b.hub.Requests(); len(reqs) != 0 {
		t.Errorf("reusing a Python cache made %d requests, first %v", len(reqs), reqs[0])
	}
}

func TestPartialPythonCacheFetchesOnlyWhatIsMissing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	files := b.files[sd15Repo]
	partial := map[string]hubtest.File{}
	for p, f := range files {
		if p != "text_encoder/model.onnx" {
			partial[p] = f
		}
	}
	writePythonCache(t, b.client.CacheDir, sd15Repo, hubtest.CommitOf(files), partial)
	if _, err := b.client.Snapshot(sd15Repo, "main"); !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "text_encoder/model.onnx") {
		t.Fatalf("Snapshot of an incomplete cache: %v, want ErrNotCached naming the missing file", err)
	}

	b.checkSnapshotFiles(t, sd15Repo, b.pull(t, sd15Repo, "main"), false)
	var gets []string
	for _, r := range b.hub.Requests() {
		if isContentGET(r) {
			gets = append(gets, r.Path)
		}
	}
	if sum := hubtest.SHA256(files["text_encoder/model.onnx"].Content); len(gets) != 1 || !strings.HasSuffix(gets[0], sum) {
		t.Errorf("content GETs %v, want only the missing text encoder (%s)", gets, sum)
	}
}

func TestSnapshotDanglingLinkIsNotCached(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	files := b.files[sd15Repo]
	snap := writePythonCache(t, b.client.CacheDir, sd15Repo, hubtest.CommitOf(files), files)
	target, err := os.Readlink(filepath.Join(snap, "unet", "model.onnx_data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(snap, "unet", target)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Snapshot(sd15Repo, "main"); !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "unet/model.onnx_data") {
		t.Errorf("Snapshot with a dangling link: %v", err)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if got, err := b.client.List(); err != nil || len(got) != 0 {
		t.Fatalf("List of an empty cache = %v, %v", got, err)
	}
	dir := b.pull(t, sdxlRepo, "refs/pr/1")
	b.pull(t, sdxlRepo, "main")
	pt := map[string]hubtest.File{"unet/diffusion_pytorch_model.safetensors": {Content: []byte("w"), LFS: true}}
	writePythonCache(t, b.client.CacheDir, "runwayml/stable-diffusion-v1-5", hubtest.CommitOf(pt), pt)

	got, err := b.client.List()
	if err != nil {
		t.Fatal(err)
	}
	// Identical files (the two tokenizers share some) share one blob.
	var size int64
	blobs := map[string]bool{}
	for p, f := range b.files[sdxlRepo] {
		if id := hubtest.GitBlobID(f.Content); hub.NeededFile(p) && !blobs[id] {
			blobs[id] = true
			size += int64(len(f.Content))
		}
	}
	want := []hub.CachedModel{
		{Repo: "runwayml/stable-diffusion-v1-5", Revisions: []string{"main"}, Commits: []string{hubtest.CommitOf(pt)}, Size: 1},
		{Repo: sdxlRepo, Revisions: []string{"main", "refs/pr/1"}, Commits: []string{filepath.Base(dir)}, Size: size, HasONNX: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List =\n%+v\nwant\n%+v", got, want)
	}
}

func TestNeededFile(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]bool{
		"model_index.json":                         true,
		"scheduler/scheduler_config.json":          true,
		"tokenizer/vocab.json":                     true,
		"tokenizer_2/merges.txt":                   true,
		"tokenizer/tokenizer_config.json":          true,
		"tokenizer_2/special_tokens_map.json":      true,
		"text_encoder/model.onnx":                  true,
		"text_encoder_2/model.onnx_data":           true,
		"text_encoder_2/model.onnx.data":           true,
		"unet/weights.pb":                          true,
		"unet/config.json":                         true,
		"vae_decoder/model.onnx":                   true,
		"tokenizer/tokenizer.json":                 false,
		"unet/diffusion_pytorch_model.safetensors": false,
		"vae_encoder/model.onnx":                   false,
		"vae/config.json":                          false,
		"README.md":                                false,
		"model.onnx":                               false,
		"unet/sub/model.onnx":                      false,
		"text_encoder/model.fp16.safetensors":      false,
		"scheduler/other.json":                     false,
	} {
		if got := hub.NeededFile(p); got != want {
			t.Errorf("NeededFile(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	tokenHome := t.TempDir()
	if err := os.WriteFile(filepath.Join(tokenHome, "token"), []byte("hf_from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want hub.Client
	}{
		{"defaults", map[string]string{},
			hub.Client{Endpoint: "https://huggingface.co", CacheDir: filepath.Join(home, ".cache/huggingface/hub")}},
		{"xdg", map[string]string{"XDG_CACHE_HOME": "/x"},
			hub.Client{Endpoint: "https://huggingface.co", CacheDir: "/x/huggingface/hub"}},
		{"hf_home over xdg", map[string]string{"XDG_CACHE_HOME": "/x", "HF_HOME": "~/hf"},
			hub.Client{Endpoint: "https://huggingface.co", CacheDir: filepath.Join(home, "hf/hub")}},
		{"hub cache over hf_home", map[string]string{"HF_HOME": "/h", "HF_HUB_CACHE": "/c", "HF_ENDPOINT": "http://mirror:8080/", "HF_TOKEN": "hf_x", "HF_HUB_OFFLINE": "1"},
			hub.Client{Endpoint: "http://mirror:8080", CacheDir: "/c", Token: "hf_x", Offline: true}},
		{"token file and yes", map[string]string{"HF_HOME": tokenHome, "HF_HUB_OFFLINE": "yes"},
			hub.Client{Endpoint: "https://huggingface.co", CacheDir: filepath.Join(tokenHome, "hub"), Token: "hf_from_file", Offline: true}},
		{"offline off", map[string]string{"HF_HUB_OFFLINE": "0"},
			hub.Client{Endpoint: "https://huggingface.co", CacheDir: filepath.Join(home, ".cache/huggingface/hub")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.env["HOME"] = home
			c, err := hub.FromEnv(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if c.HTTP == nil {
				t.Error("no HTTP client")
			}
			c.HTTP = nil
			if !reflect.DeepEqual(*c, tc.want) {
				t.Errorf("got %+v, want %+v", *c, tc.want)
			}
		})
	}
	if _, err := hub.FromEnv(func(k string) string {
		return map[string]string{"HOME": home, "HF_ENDPOINT": "ftp://x"}[k]
	}); err == nil {
		t.Error("FromEnv accepted an ftp endpoint")
	}
}

func TestProgressBar(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	bar := hub.NewProgressBar(&buf)
	for done := int64(0); done <= 4<<20; done += 4 << 10 {
		bar("unet/model.onnx_data", done, 4<<20)
	}
	bar("model_index.json", 0, 10)
	bar("model_index.json", 10, 10)
	out := buf.String()
	if n := strings.Count(out, "\r"); n < 100 || n > 104 {
		t.Errorf("%d redraws, want about one per percent", n)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per file, got %q", lines)
	}
	if !strings.Contains(lines[0], "100%") || !strings.Contains(lines[0], "4.0 MiB / 4.0 MiB") {
		t.Errorf("first line ends %q", lines[0][max(0, len(lines[0])-80):])
	}
	if !strings.HasSuffix(lines[1], "10 B / 10 B\x1b[K") {
		t.Errorf("second line %q", lines[1])
	}
}
