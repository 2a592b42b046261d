package hub_test

import (
	"context"
	"errors"
	"github.com/diffute/diffute/internal/fixtures"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/diffute/diffute/checkpoint"
	"github.com/diffute/diffute/hub"
	"github.com/diffute/diffute/hub/hubtest"
	"github.com/diffute/diffute/safetensors"
)

const sd21Repo = "stabilityai/stable-diffusion-2-1"

// fixtureRepo serves ../shared/fixtures/checkpoints/<name> as a Hub
// repository, with files a pipeline never loads beside it (as the real
// repositories have). Missing fixtures fail under CI and skip elsewhere.
func fixtureRepo(t *testing.T, name string) hubtest.Repo {
	t.Helper()
	r, err := hubtest.RepoFromDir(fixtures.Path(t, "checkpoints", name))
	if err != nil {
		t.Fatal(err)
	}
	r.Files["README.md"] = hubtest.File{Content: []byte("# tiny\n")}
	r.Files["v2-1_768-ema-pruned.safetensors"] = hubtest.File{Content: []byte("a single-file copy"), LFS: true}
	r.Files["unet/diffusion_pytorch_model.bin"] = hubtest.File{Content: []byte("pickle"), LFS: true}
	r.Files["text_encoder/pytorch_model.fp16.bin"] = hubtest.File{Content: []byte("pickle"), LFS: true}
	r.Files["safety_checker/model.safetensors"] = hubtest.File{Content: []byte("sc"), LFS: true}
	r.Files["feature_extractor/preprocessor_config.json"] = hubtest.File{Content: []byte(`{}`)}
	r.Files["tokenizer/tokenizer.json"] = hubtest.File{Content: []byte(`{}`)}
	return r
}

// snapshotFiles lists the files of a snapshot folder, slash-separated.
func snapshotFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	sort.Strings(out)
	return out
}

func TestPullDiffusersFetchesOnlyFP16(t *testing.T) {
	t.Parallel()
	repo := fixtureRepo(t, "sd21v")
	b := setup(t, map[string]hubtest.Repo{sd21Repo: repo})
	var progressed []string
	b.client.Progress = func(file string, done, total int64) {
		if done == total && !slices.Contains(progressed, file) {
			progressed = append(progressed, file)
		}
	}
	dir := b.pull(t, sd21Repo, "main")
	want := []string{
		"model_index.json",
		"scheduler/scheduler_config.json",
		"text_encoder/config.json", "text_encoder/model.fp16.safetensors",
		"tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
		"unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors",
		"vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors",
	}
	if got := snapshotFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("snapshot holds %v\nwant %v", got, want)
	}
	for _, f := range want {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(got) != string(repo.Files[f].Content) {
			t.Errorf("%s: content differs (%v)", f, err)
		}
		if target, err := os.Readlink(filepath.Join(dir, f)); err != nil || !strings.Contains(target, "blobs") {
			t.Errorf("%s: not a link into blobs/ (%q, %v)", f, target, err)
		}
	}
	for _, r := range b.hub.Requests() {
		if r.Method == "GET" && (strings.HasSuffix(r.Path, "diffusion_pytorch_model.safetensors") || strings.HasSuffix(r.Path, "/model.safetensors")) {
			t.Errorf("the fp32 weights were fetched: %s %s", r.Server, r.Path)
		}
	}
	if !slices.Contains(progressed, "unet/diffusion_pytorch_model.fp16.safetensors") {
		t.Errorf("no progress reported for the UNet weights (got %v)", progressed)
	}

	// The pulled folder opens as the engine will open it.
	c, err := checkpoint.OpenComponent(filepath.Join(dir, "unet"), checkpoint.ComponentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Precision != safetensors.F16 {
		t.Errorf("unet precision %s, want F16", c.Precision)
	}
	c.Close()

	// Cached: no further request, and Snapshot finds it.
	b.hub.ResetRequests()
	if again := b.pull(t, sd21Repo, "main"); again != dir {
		t.Errorf("second pull: %s, want %s", again, dir)
	}
	if n := len(b.hub.Requests()); n != 0 {
		t.Errorf("second pull made %d requests", n)
	}
	if snap, err := b.client.Snapshot(sd21Repo, "main"); err != nil || snap != dir {
		t.Errorf("Snapshot: %s, %v", snap, err)
	}
	models, err := b.client.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models {
		if m.Repo == sd21Repo && (!m.HasDiffusers || m.HasONNX) {
			t.Errorf("List: %+v, want HasDiffusers and not HasONNX", m)
		}
	}

	// A deleted blob makes the snapshot incomplete; the next pull repairs it.
	os.Remove(filepath.Join(dir, "vae", "diffusion_pytorch_model.fp16.safetensors"))
	if _, err := b.client.Snapshot(sd21Repo, "main"); !errors.Is(err, hub.ErrNotCached) || !strings.Contains(err.Error(), "vae/") {
		t.Errorf("Snapshot of an incomplete folder: %v", err)
	}
	b.pull(t, sd21Repo, "main")
}

func TestPullFormatChoice(t *testing.T) {
	t.Parallel()
	// A repository with both layouts, as stabilityai/sdxl-turbo and
	// stable-diffusion-xl-base-1.0 are: the ONNX placeholder plus the diffusers
	// folders of the sd21v fixture.
	both := fixtureRepo(t, "sd21v")
	onnx := hubtest.PlaceholderPipeline(false, 10_000)
	for p, f := range onnx {
		if _, dup := both.Files[p]; !dup && hub.NeededFile(p) {
			both.Files[p] = f
		}
	}
	const repo = "org/both-layouts"
	b := setup(t, map[string]hubtest.Repo{repo: both})

	dir := b.pull(t, repo, "main")
	for _, f := range snapshotFiles(t, dir) {
		if strings.HasSuffix(f, ".onnx") || strings.HasSuffix(f, ".onnx_data") {
			t.Errorf("default pull fetched ONNX file %s", f)
		}
	}
	if _, err := b.client.Pull(context.Background(), repo, hub.PullOptions{Format: hub.FormatONNX}); err != nil {
		t.Fatal(err)
	}
	files := snapshotFiles(t, dir)
	if !slices.Contains(files, "unet/model.onnx") || !slices.Contains(files, "vae_decoder/model.onnx") {
		t.Errorf("--format onnx did not fetch the ONNX layout: %v", files)
	}

	// Forcing safetensors on an ONNX-only repository names what is missing.
	_, err := b.client.Pull(context.Background(), sd15Repo, hub.PullOptions{Format: hub.FormatSafetensors})
	if !errors.Is(err, hub.ErrNoDiffusers) || !strings.Contains(err.Error(), "vae") {
		t.Errorf("safetensors from an ONNX-only repo: %v", err)
	}
	if _, err := hub.ParseFormat("pt"); err == nil {
		t.Error("ParseFormat accepted pt")
	}
}

// TestPullDiffusersSharded serves a UNet sharded as save_pretrained writes a
// large one (fp16 index and shards beside the fp32 ones): only the fp16 index
// and its shards are fetched.
func TestPullDiffusersSharded(t *testing.T) {
	t.Parallel()
	repo := fixtureRepo(t, "sd21v")
	src := t.TempDir()
	ref, err := safetensors.Open(fixtures.Path(t, "checkpoints", "sd21v", "unet", "diffusion_pytorch_model.fp16.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	names := ref.Names()
	weightMap := map[string]string{}
	for i, part := range [][]string{names[:len(names)/2], names[len(names)/2:]} {
		shard := []string{"diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "diffusion_pytorch_model.fp16-00002-of-00002.safetensors"}[i]
		var ts []safetensors.WriteTensor
		for _, n := range part {
			tt, _ := ref.Tensor(n)
			data := ref.Bytes(tt)
			ts = append(ts, safetensors.WriteTensor{Name: n, DType: tt.DType, Shape: tt.Shape, Fill: func(dst []byte) error { copy(dst, data); return nil }})
			weightMap[n] = shard
		}
		if err := safetensors.WriteFile(filepath.Join(src, shard), nil, ts); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(src, shard))
		repo.Files["unet/"+shard] = hubtest.File{Content: b, LFS: true}
		repo.Files["unet/"+strings.Replace(shard, ".fp16", "", 1)] = hubtest.File{Content: []byte("fp32 shard"), LFS: true}
	}
	idx := []byte(`{"metadata": {}, "weight_map": {`)
	for i, n := range names {
		if i > 0 {
			idx = append(idx, ',')
		}
		idx = append(idx, `"`+n+`": "`+weightMap[n]+`"`...)
	}
	idx = append(idx, "}}"...)
	delete(repo.Files, "unet/diffusion_pytorch_model.fp16.safetensors")
	repo.Files["unet/diffusion_pytorch_model.safetensors.index.fp16.json"] = hubtest.File{Content: idx}
	b := setup(t, map[string]hubtest.Repo{sd21Repo: repo})
	dir := b.pull(t, sd21Repo, "main")
	var unet []string
	for _, f := range snapshotFiles(t, dir) {
		if strings.HasPrefix(f, "unet/") {
			unet = append(unet, f)
		}
	}
	want := []string{"unet/config.json", "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors", "unet/diffusion_pytorch_model.safetensors.index.fp16.json"}
	if !slices.Equal(unet, want) {
		t.Fatalf("unet/ holds %v\nwant %v", unet, want)
	}
	c, err := checkpoint.OpenComponent(filepath.Join(dir, "unet"), checkpoint.ComponentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Weights.Names()) != len(names) || len(c.Files) != 2 {
		t.Errorf("sharded unet: %d tensors in %d files", len(c.Weights.Names()), len(c.Files))
	}

	// An index naming a shard the revision lacks is refused before any shard is fetched.
	repo.Files["unet/diffusion_pytorch_model.safetensors.index.fp16.json"] = hubtest.File{Content: []byte(`{"weight_map": {"a": "gone.safetensors"}}`)}
	b2 := setup(t, map[string]hubtest.Repo{sd21Repo: repo})
	if _, err := b2.client.Pull(context.Background(), sd21Repo, hub.PullOptions{}); !errors.Is(err, hub.ErrNoDiffusers) || !strings.Contains(err.Error(), "unet/gone.safetensors") {
		t.Errorf("index with a missing shard: %v", err)
	}
}

// TestPullDiffusersResumesAndVerifies: the weights of the diffusers layout go
// through the same resume and sha256 checks as ONNX files.
func TestPullDiffusersResumesAndVerifies(t *testing.T) {
	t.Parallel()
	const unet = "unet/diffusion_pytorch_model.fp16.safetensors"
	b := setup(t, map[string]hubtest.Repo{sd21Repo: fixtureRepo(t, "sd21v")})
	b.hub.CutOnce(sd21Repo, unet, 50_000)
	dir := b.pull(t, sd21Repo, "main")
	ranged := countRequests(b.hub.Requests(), func(r hubtest.Request) bool {
		return r.Server == "cdn" && r.Range == "bytes=50000-"
	})
	if ranged != 1 {
		t.Errorf("%d ranged requests after the cut, want 1 resuming at byte 50000", ranged)
	}
	got, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(unet)))
	if want := b.files[sd21Repo][unet].Content; string(got) != string(want) {
		t.Errorf("resumed UNet differs: %d bytes, want %d", len(got), len(want))
	}

	c := setup(t, map[string]hubtest.Repo{sd21Repo: fixtureRepo(t, "sd21v")})
	c.hub.Corrupt(sd21Repo, unet, true)
	if _, err := c.client.Pull(context.Background(), sd21Repo, hub.PullOptions{}); !errors.Is(err, hub.ErrCorrupt) || !strings.Contains(err.Error(), unet) {
		t.Errorf("corrupt fp16 UNet: %v, want ErrCorrupt naming it", err)
	}
}
