package hub_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/diffute/diffute/hub"
	"github.com/diffute/diffute/hub/hubtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	sdxlRepo = "stabilityai/sdxl-turbo"
	sd15Repo = "diffute/tiny-sd15-onnx"
	unetSize = 300_000
)

type testBundle struct {
	hub    *hubtest.Hub
	client *hub.Client
	files  map[string]map[string]hubtest.File // repo → files
}

// setup starts a fake Hub with an SDXL and an SD 1.5 placeholder pipeline and
// a client with an empty cache pointed at it.
func setup(t *testing.T, extra map[string]hubtest.Repo) *testBundle {
	t.Helper()
	repos := map[string]hubtest.Repo{
		sdxlRepo: {Files: hubtest.PlaceholderPipeline(true, unetSize), Revisions: []string{"main", "refs/pr/1"}},
		sd15Repo: {Files: hubtest.PlaceholderPipeline(false, unetSize/3)},
	}
	for k, v := range extra {
		repos[k] = v
	}
	h := hubtest.New(t, repos)
	b := &testBundle{hub: h, files: map[string]map[string]hubtest.File{}}
	for k, v := range repos {
		b.files[k] = v.Files
	}
	b.client = &hub.Client{Endpoint: h.URL, CacheDir: t.TempDir(), HTTP: h.HTTPClient()}
	return b
}

func (b *testBundle) pull(t *testing.T, repo, rev string) string {
	t.Helper()
	dir, err := b.client.Pull(context.Background(), repo, hub.PullOptions{Revision: rev})
	if err != nil {
		t.Fatalf("Pull(%s, %s): %v", repo, rev, err)
	}
	return dir
}

// checkSnapshot asserts that dir holds exactly the needed files of repo, each
// a relative symlink into blobs/ with the right content.
func (b *testBundle) checkSnapshot(t *testing.T, repo, dir string) {
	t.Helper()
	b.checkSnapshotFiles(t, repo, dir, true)
}

// checkSnapshotFiles is checkSnapshot, asserting the absence of unneeded
// files only when onlyNeeded (a Python-made snapshot may hold them).
func (b *testBundle) checkSnapshotFiles(t *testing.T, repo, dir string, onlyNeeded bool) {
	t.Helper()
	files := b.files[repo]
	for p, f := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if !hub.NeededFile(p) {
			if _, err := os.Lstat(full); err == nil && onlyNeeded {
				t.Errorf("%s: unneeded file is in the snapshot", p)
			}
			continue
		}
		target, err := os.Readlink(full)
		if err != nil {
			t.Errorf("%s: not a symlink: %v", p, err)
			continue
		}
		if filepath.IsAbs(target) || !strings.Contains(target, "blobs"+string(filepath.Separator)) {
			t.Errorf("%s: link %q is not a relative link into blobs/", p, target)
		}
		want := hubtest.GitBlobID(f.Content)
		if f.LFS {
			want = hubtest.SHA256(f.Content)
		}
		if filepath.Base(target) != want {
			t.Errorf("%s: blob named %s, want its etag %s", p, filepath.Base(target), want)
		}
		got, err := os.ReadFile(full)
		if err != nil || string(got) != string(f.Content) {
			t.Errorf("%s: content differs (err %v, %d bytes, want %d)", p, err, len(got), len(f.Content))
		}
	}
}

func countRequests(reqs []hubtest.Request, keep func(hubtest.Request) bool) int {
	n := 0
	for _, r := range reqs {
		if keep(r) {
			n++
		}
	}
	return n
}

func isContentGET(r hubtest.Request) bool {
	return r.Method == "GET" && (r.Server == "cdn" || strings.Contains(r.Path, "/resolve/"))
}

func TestPullThenSecondPullMakesNoRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	dir := b.pull(t, sdxlRepo, "main")
	b.checkSnapshot(t, sdxlRepo, dir)

	commit := filepath.Base(dir)
	ref, err := os.ReadFile(filepath.Join(b.client.CacheDir, "models--stabilityai--sdxl-turbo", "refs", "main"))
	if err != nil || string(ref) != commit {
		t.Fatalf("refs/main = %q (%v), want %s", ref, err, commit)
	}
	if want := filepath.Join(b.client.CacheDir, "models--stabilityai--sdxl-turbo", "snapshots", commit); dir != want {
		t.Errorf("snapshot dir %s, want %s", dir, want)
	}

	// Only the needed files were asked for, never the PyTorch weights.
	for _, r := range b.hub.Requests() {
		for _, bad := range []string{"safetensors", "vae_encoder", "README", "tokenizer.json"} {
			if strings.Contains(r.Path, bad) {
				t.Errorf("fetched unneeded %s %s %s", r.Server, r.Method, r.Path)
			}
		}
	}

	b.hub.ResetRequests()
	again := b.pull(t, sdxlRepo, "main")
	if again != dir {
		t.Errorf("second pull gave %s, want %s", again, dir)
	}
	if reqs := b.hub.Requests(); len(reqs) != 0 {
		t.Errorf("second pull made %d requests, first %v", len(reqs), reqs[0])
	}
}

func TestPullRebuildsSnapshotFromBlobsWithoutContentGET(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	dir := b.pull(t, sd15Repo, "")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	b.hub.ResetRequests()
	if again := b.pull(t, sd15Repo, "main"); again != dir {
		t.Fatalf("got %s, want %s", again, dir)
	}
	b.checkSnapshot(t, sd15Repo, dir)
	reqs := b.hub.Requests()
	if n := countRequests(reqs, isContentGET); n != 0 {
		t.Errorf("%d content GETs although every blob was cached", n)
	}
	if n := countRequests(reqs, func(r hubtest.Request) bool { return r.Method == "HEAD" }); n == 0 {
		t.Error("expected HEAD metadata requests to find the blobs")
	}
}

func TestPullByCommitAndBySlashedRevision(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	commit := hubtest.CommitOf(b.files[sdxlRepo])
	dir := b.pull(t, sdxlRepo, commit)
	if filepath.Base(dir) != commit {
		t.Fatalf("snapshot %s, want commit %s", dir, commit)
	}
	refs := filepath.Join(b.client.CacheDir, "models--stabilityai--sdxl-turbo", "refs")
	if _, err := os.Stat(refs); err == nil {
		t.Error("a pull by commit hash wrote a ref")
	}
	if got := b.pull(t, sdxlRepo, "refs/pr/1"); got != dir {
		t.Errorf("refs/pr/1 gave %s, want %s", got, dir)
	}
	if ref, err := os.ReadFile(filepath.Join(refs, "refs", "pr", "1")); err != nil || string(ref) != commit {
		t.Errorf("refs/refs/pr/1 = %q (%v)", ref, err)
	}
}

func TestOffline(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	offline := *b.client
	offline.Offline = true

	_, err := offline.Pull(context.Background(), sd15Repo, hub.PullOptions{Revision: "main"})
	if !errors.Is(err, hub.ErrOffline) || !strings.Contains(err.Error(), "HF_HUB_OFFLINE") {
		t.Fatalf("offline pull of an absent model: %v, want ErrOffline naming HF_HUB_OFFLINE", err)
	}
	if n := len(b.hub.Requests()); n != 0 {
		t.Fatalf("offline client made %d requests", n)
	}

	dir := b.pull(t, sd15Repo, "main")
	b.hub.ResetRequests()
	for _, rev := range []string{"main", filepath.Base(dir)} {
		got, err := offline.Pull(context.Background(), sd15Repo, hub.PullOptions{Revision: rev})
		if err != nil || got != dir {
			t.Errorf("offline Pull(%s) = %s, %v; want %s", rev, got, err, dir)
		}
	}
	if _, err := offline.Pull(context.Background(), sd15Repo, hub.PullOptions{Revision: "v2"}); !errors.Is(err, hub.ErrOffline) {
		t.Errorf("offline pull of an uncached revision: %v", err)
	}
	if n := len(b.hub.Requests()); n != 0 {
		t.Errorf("offline client made %d requests", n)
	}
}

func TestResumeAfterConnectionCut(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const cut = 100_000
	b.hub.CutOnce(sdxlRepo, "unet/model.onnx_data", cut)
	var mu sync.Mutex
	var last, total int64
	b.client.Progress = func(file string, done, tot int64) {
		if file == "unet/model.onnx_data" {
			mu.Lock()
			last, total = done, tot
			mu.Unlock()
		}
	}
	dir := b.pull(t, sdxlRepo, "main")
	b.checkSnapshot(t, sdxlRepo, dir)

	sum := hubtest.SHA256(b.files[sdxlRepo]["unet/model.onnx_data"].Content)
	var ranges []string
	for _, r := range b.hub.Requests() {
		if r.Server == "cdn" && strings.HasSuffix(r.Path, sum) {
			ranges = append(ranges, r.Range)
		}
	}
	if want := []string{"", fmt.Sprintf("bytes=%d-", cut)}; fmt.Sprint(ranges) != fmt.Sprint(want) {
		t.Errorf("CDN requests for the cut file had ranges %q, want %q", ranges, want)
	}
	if last != unetSize || total != unetSize {
		t.Errorf("last progress %d/%d, want %d/%d", last, total, unetSize, unetSize)
	}
	incomplete, _ := filepath.Glob(filepath.Join(b.client.CacheDir, "*", "blobs", "*.incomplete"))
	if len(incomplete) != 0 {
		t.Errorf("left partial files: %v", incomplete)
	}
}

func TestResumeIncompleteFromEarlierRun(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	content := b.files[sdxlRepo]["unet/model.onnx_data"].Content
	sum := hubtest.SHA256(content)
	blobs := filepath.Join(b.client.CacheDir, "models--stabilityai--sdxl-turbo", "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	const have = 123_457
	if err := os.WriteFile(filepath.Join(blobs, sum+".incomplete"), content[:have], 0o644); err != nil {
		t.Fatal(err)
	}
	dir := b.pull(t, sdxlRepo, "main")
	b.checkSnapshot(t, sdxlRepo, dir)
	var ranges []string
	for _, r := range b.hub.Requests() {
		if r.Server == "cdn" && strings.HasSuffix(r.Path, sum) {
			ranges = append(ranges, r.Range)
		}
	}
	if want := fmt.Sprintf("[bytes=%d-]", have); fmt.Sprint(ranges) != want {
		t.Errorf("ranges %v, want %s", ranges, want)
	}
}

func TestCorruptContentRejected(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.hub.Corrupt(sdxlRepo, "unet/model.onnx_data", true)
	_, err := b.client.Pull(context.Background(), sdxlRepo, hub.PullOptions{Revision: "main"})
	if !errors.Is(err, hub.ErrCorrupt) || !strings.Contains(err.Error(), "unet/model.onnx_data") {
		t.Fatalf("pull of corrupt content: %v, want ErrCorrupt naming the file", err)
	}
	repoDir := filepath.Join(b.client.CacheDir, "models--stabilityai--sdxl-turbo")
	sum := hubtest.SHA256(b.files[sdxlRepo]["unet/model.onnx_data"].Content)
	for _, p := range []string{"blobs/" + sum, "blobs/" + sum + ".incomplete", "refs/main"} {
		if _, err := os.Stat(filepath.Join(repoDir, p)); err == nil {
			t.Errorf("%s exists after a checksum failure", p)
		}
	}
	if _, err := b.client.Snapshot(sdxlRepo, "main"); !errors.Is(err, hub.ErrNotCached) {
		t.Errorf("Snapshot after failed pull: %v, want ErrNotCached", err)
	}

	b.hub.Corrupt(sdxlRepo, "unet/model.onnx_data", false)
	b.checkSnapshot(t, sdxlRepo, b.pull(t, sdxlRepo, "main"))
}

func TestGatedRepoAndTokenScope(t *testing.T) {
	t.Parallel()
	const gated = "stabilityai/stable-diffusion-xl-base-1.0"
	b := setup(t, map[string]hubtest.Repo{gated: {Files: hubtest.PlaceholderPipeline(true, 50_000), Gated: true}})

	_, err := b.client.Pull(context.Background(), gated, hub.PullOptions{Revision: "main"})
	if !errors.Is(err, hub.ErrGated) || errors.Is(err, hub.ErrNotFound) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("gated pull without token: %v, want ErrGated mentioning HF_TOKEN", err)
	}
	var rerr *hub.ResponseError
	if !errors.As(err, &rerr) || rerr.StatusCode != 401 || rerr.Code != "GatedRepo" {
		t.Errorf("error %#v, want a 401 GatedRepo ResponseError", rerr)
	}

	b.client.Token = "hf_wrong"
	if _, err := b.client.Pull(context.Background(), gated, hub.PullOptions{Revision: "main"}); !errors.Is(err, hub.ErrGated) {
		t.Errorf("wrong token: %v, want ErrGated", err)
	}

	b.client.Token = hubtest.Token
	b.hub.ResetRequests()
	b.files[gated] = hubtest.PlaceholderPipeline(true, 50_000)
	b.checkSnapshot(t, gated, b.pull(t, gated, "main"))
	reqs := b.hub.Requests()
	if countRequests(reqs, func(r hubtest.Request) bool { return r.Server == "cdn" }) == 0 {
		t.Fatal("no CDN request: the test does not cover the redirect")
	}
	for _, r := range reqs {
		want := ""
		if r.Server == "hub" {
			want = "Bearer " + hubtest.Token
		}
		if r.Authorization != want {
			t.Errorf("%s %s %s: Authorization %q, want %q", r.Server, r.Method, r.Path, r.Authorization, want)
		}
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, tc := range []struct{ repo, rev, code string }{
		{"nobody/nothing", "main", "RepositoryNotFound"},
		{sd15Repo, "no-such-branch", "RevisionNotFound"},
	} {
		_, err := b.client.Pull(context.Background(), tc.repo, hub.PullOptions{Revision: tc.rev})
		var rerr *hub.ResponseError
		if !errors.Is(err, hub.ErrNotFound) || errors.Is(err, hub.ErrGated) || !errors.As(err, &rerr) || rerr.Code != tc.code {
			t.Errorf("Pull(%s, %s) = %v, want ErrNotFound with %s", tc.repo, tc.rev, err, tc.code)
		}
	}
}

func TestInvalidNamesRejectedBeforeNetwork(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, tc := range []struct{ repo, rev string }{
		{"../etc", "main"}, {"a/b/c", "main"}, {"org--x/y", "main"}, {"org/name", "../../x"}, {"org/name", "/abs"},
	} {
		if _, err := b.client.Pull(context.Background(), tc.repo, hub.PullOptions{Revision: tc.rev}); err == nil {
			t.Errorf("Pull(%q, %q) succeeded", tc.repo, tc.rev)
		}
	}
	if n := len(b.hub.Requests()); n != 0 {
		t.Errorf("%d requests for invalid names", n)
	}
}

func TestNoONNXLayout(t *testing.T) {
	t.Parallel()
	const pt = "runwayml/stable-diffusion-v1-5"
	files := map[string]hubtest.File{
		"model_index.json":                           {Content: []byte(`{"_class_name": "StableDiffusionPipeline"}`)},
		"unet/diffusion_pytorch_model.safetensors":   {Content: []byte("weights"), LFS: true},
		"vae/diffusion_pytorch_model.safetensors":    {Content: []byte("vae"), LFS: true},
		"scheduler/scheduler_config.json":            {Content: []byte(`{}`)},
		"text_encoder/model.safetensors":             {Content: []byte("te"), LFS: true},
		"tokenizer/vocab.json":                       {Content: []byte(`{}`)},
		"tokenizer/merges.txt":                       {Content: []byte("#version: 0.2\n")},
		"safety_checker/model.safetensors":           {Content: []byte("sc"), LFS: true},
		"feature_extractor/preprocessor_config.json": {Content: []byte(`{}`)},
	}
	b := setup(t, map[string]hubtest.Repo{pt: {Files: files}})
	_, err := b.client.Pull(context.Background(), pt, hub.PullOptions{Revision: "main"})
	if !errors.Is(err, hub.ErrNoONNX) || !strings.Contains(err.Error(), "unet/model.onnx") || !strings.Contains(err.Error(), "vae_decoder/model.onnx") {
		t.Fatalf("pull of a PyTorch-only repo: %v, want ErrNoONNX naming unet/model.onnx and vae_decoder/model.onnx", err)
	}
	if !strings.Contains(err.Error(), "nor does it hold the diffusers layout") {
		t.Errorf("pull of a repo with neither layout does not say the safetensors layout is missing too: %v", err)
	}
	if n := countRequests(b.hub.Requests(), func(r hubtest.Request) bool { return strings.Contains(r.Path, "/resolve/") || r.Server == "cdn" }); n != 0 {
		t.Errorf("%d file requests for a repo without ONNX layout", n)
	}
}

func TestConcurrentPullsDownloadEachBlobOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const n = 4
	dirs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dirs[i], errs[i] = b.client.Pull(context.Background(), sdxlRepo, hub.PullOptions{Revision: "main"})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Fatalf("pull %d: %s, %v", i, dirs[i], errs[i])
		}
	}
	b.checkSnapshot(t, sdxlRepo, dirs[0])
	lfs := 0
	for p, f := range b.files[sdxlRepo] {
		if f.LFS && hub.NeededFile(p) {
			lfs++
		}
	}
	if got := countRequests(b.hub.Requests(), func(r hubtest.Request) bool { return r.Server == "cdn" }); got != lfs {
		t.Errorf("%d CDN downloads for %d LFS files", got, lfs)
	}
}

func TestCancelledPull(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.client.Pull(ctx, sdxlRepo, hub.PullOptions{Revision: "main"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled pull: %v, want context.Canceled", err)
	}
}

func TestRenamedRepoFollowsRelativeRedirectWithToken(t *testing.T) {
	t.Parallel()
	const old = "olduser/tiny-sd15-onnx"
	b := setup(t, map[string]hubtest.Repo{old: {MovedTo: sd15Repo}})
	b.files[old] = b.files[sd15Repo]
	b.client.Token = "hf_user_token"
	dir := b.pull(t, old, "main")
	if want := filepath.Join(b.client.CacheDir, "models--olduser--tiny-sd15-onnx"); !strings.HasPrefix(dir, want) {
		t.Errorf("snapshot %s, want it under the requested id %s", dir, want)
	}
	b.checkSnapshot(t, old, dir)
	var redirected, followed int
	for _, r := range b.hub.Requests() {
		if r.Server == "hub" && r.Authorization != "Bearer hf_user_token" {
			t.Errorf("hub request %s %s without the token", r.Method, r.Path)
		}
		if strings.Contains(r.Path, "/"+old+"/") {
			redirected++
		}
		if strings.Contains(r.Path, "/"+sd15Repo+"/") {
			followed++
		}
	}
	if redirected == 0 || followed < redirected {
		t.Errorf("%d requests to the old name, %d to the new: the redirect was not followed", redirected, followed)
	}
}

// A partial file left by an earlier run must never poison the blob: a server
// ignoring Range restarts the download; bytes that are not a prefix of the
// content fail the checksum and are deleted, so the next pull succeeds.
func TestStaleIncompleteFiles(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	content := b.files[sdxlRepo]["unet/model.onnx_data"].Content
	inc := filepath.Join(b.client.CacheDir, "models--stabilityai--sdxl-turbo", "blobs", hubtest.SHA256(content)+".incomplete")
	if err := os.MkdirAll(filepath.Dir(inc), 0o755); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(inc, []byte("junk that is not a prefix"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.hub.IgnoreRange(true)
	b.checkSnapshot(t, sdxlRepo, b.pull(t, sdxlRepo, "main"))
	b.hub.IgnoreRange(false)

	if err := os.RemoveAll(filepath.Join(b.client.CacheDir, "models--stabilityai--sdxl-turbo")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(inc), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inc, []byte("junk that is not a prefix"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.Pull(context.Background(), sdxlRepo, hub.PullOptions{Revision: "main"}); !errors.Is(err, hub.ErrCorrupt) {
		t.Fatalf("resuming onto junk: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(inc); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the bad partial file is still there: %v", err)
	}
	b.checkSnapshot(t, sdxlRepo, b.pull(t, sdxlRepo, "main"))
}
