package hubtest_test

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/diffute/diffute/hub/hubtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func get(t *testing.T, c *http.Client, url, rng string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestCDNRangesAndCut(t *testing.T) {
	t.Parallel()
	content := []byte("0123456789abcdef")
	h := hubtest.New(t, map[string]hubtest.Repo{"o/r": {Files: map[string]hubtest.File{"unet/model.onnx": {Content: content, LFS: true}}}})
	c := h.HTTPClient()
	url := h.URL + "/o/r/resolve/main/unet/model.onnx"

	resp, b, err := get(t, c, url, "bytes=10-")
	if err != nil || resp.StatusCode != http.StatusPartialContent || string(b) != "abcdef" || resp.Header.Get("Content-Range") != "bytes 10-15/16" {
		t.Errorf("range from 10: %v %v %q %q", err, resp.Status, b, resp.Header.Get("Content-Range"))
	}
	if got := resp.Request.URL.String(); !strings.HasPrefix(got, h.CDNURL+"/lfs/") {
		t.Errorf("LFS file was not redirected to the CDN")
	}
	if resp, _, _ := get(t, c, url, "bytes=16-"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %s", resp.Status)
	}

	h.CutOnce("o/r", "unet/model.onnx", 5)
	_, b, err = get(t, c, url, "")
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(b) != "01234" {
		t.Errorf("cut download: %q, %v; want 5 bytes then unexpected EOF", b, err)
	}
	if _, b, err = get(t, c, url, ""); err != nil || string(b) != string(content) {
		t.Errorf("after the cut: %q, %v", b, err)
	}
}

func TestRepoFromDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for p, s := range map[string]string{"model_index.json": "{}", "unet/model.onnx": "graph"} {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := hubtest.RepoFromDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f := r.Files["unet/model.onnx"]; !f.LFS || string(f.Content) != "graph" {
		t.Errorf("unet/model.onnx = %+v, want LFS content", f)
	}
	if f := r.Files["model_index.json"]; f.LFS || string(f.Content) != "{}" {
		t.Errorf("model_index.json = %+v", f)
	}
	if len(r.Files) != 2 {
		t.Errorf("%d files", len(r.Files))
	}
}
