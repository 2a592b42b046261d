package media_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
	"github.com/diffute/diffute/media"
	"github.com/diffute/diffute/mediatest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// openDisk returns a Disk in a fresh directory whose URLs are served by the real API
// handler on a loopback server.
func openDisk(t *testing.T) (*media.Disk, string) {
	t.Helper()
	s := newSigner(t)
	root := filepath.Join(t.TempDir(), "media")
	d, err := media.NewDisk(root, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := httptest.NewServer(httpapi.MediaHandler(d, s, nil))
	t.Cleanup(srv.Close)
	s.BaseURL = srv.URL // before any URL is made or served
	return d, root
}

func TestDiskMediaStore(t *testing.T) {
	t.Parallel()
	mediatest.Run(t, func(t *testing.T) diffute.MediaStore {
		d, _ := openDisk(t)
		return d
	})
}

func TestDiskLayoutAndModes(t *testing.T) {
	t.Parallel()
	d, root := openDisk(t)
	key := diffute.MediaKey("acme", "web", 1234567890123, "Ansel_Adams", 2, "webp")
	if err := d.Put(t.Context(), key, []byte("webp bytes"), "image/webp"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "acme", "web", "1234567890123", "Ansel_Adams", "2.webp")
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "webp bytes" {
		t.Fatalf("file at %s: %q, %v", path, data, err)
	}
	for dir := filepath.Dir(path); dir != root; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&^0o750 != 0 {
			t.Errorf("%s has mode %v, want at most 0750", dir, perm)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after one Put, want 1 (temporary file left behind?)", len(entries))
	}
}

func TestDiskRejectsMismatchedContentType(t *testing.T) {
	t.Parallel()
	d, _ := openDisk(t)
	if err := d.Put(t.Context(), "a/b/1/p/0.png", []byte("x"), "image/jpeg"); err == nil {
		t.Error("Put of a .png key as image/jpeg succeeded")
	}
	if err := d.Put(t.Context(), "a/b/1/p/0.png", []byte("x"), ""); err != nil {
		t.Errorf("Put without a content type: %v", err)
	}
}

// TestDiskSymlinkEscape checks that a symbolic link planted inside the root cannot be
// used to read or write outside it.
func TestDiskSymlinkEscape(t *testing.T) {
	t.Parallel()
	d, root := openDisk(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.png"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "evil")); err != nil {
		t.Fatal(err)
	}
	if r, _, err := d.Open(t.Context(), "evil/secret.png"); err == nil {
		b, _ := io.ReadAll(r)
		r.Close()
		t.Fatalf("Open through a symlink read %q from outside the root", b)
	}
	if err := d.Put(t.Context(), "evil/new.png", []byte("x"), "image/png"); err == nil {
		t.Error("Put through a symlink out of the root succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "new.png")); err == nil {
		t.Error("a file was written outside the root")
	}
}

// TestDiskServedByAPI checks what only the HTTP side shows: conditional and range
// requests, caching headers and expiry.
func TestDiskServedByAPI(t *testing.T) {
	t.Parallel()
	d, _ := openDisk(t)
	key := diffute.MediaKey("acme", "web", 1234567890123, "p", 0, "png")
	data := bytes.Repeat([]byte("0123456789"), 100)
	if err := d.Put(t.Context(), key, data, "image/png"); err != nil {
		t.Fatal(err)
	}
	u, err := d.URL(t.Context(), key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	get := func(url string, header map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get(u, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	etag := resp.Header.Get("ETag")
	if etag == "" || resp.Header.Get("Last-Modified") == "" {
		t.Errorf("missing ETag or Last-Modified: %v", resp.Header)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "private, max-age=") {
		t.Errorf("Cache-Control = %q", cc)
	}
	if resp, _ := get(u, map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", resp.StatusCode)
	}
	resp, body = get(u, map[string]string{"Range": "bytes=10-19"})
	if resp.StatusCode != http.StatusPartialContent || string(body) != "0123456789" {
		t.Errorf("Range: %d %q, want 206 0123456789", resp.StatusCode, body)
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 10-19/1000" {
		t.Errorf("Content-Range = %q", cr)
	}
	expired := strings.Replace(u, "expires=", "expires=1", 1) // a different expiry: signature fails
	if resp, _ := get(expired, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("tampered expiry: %d, want 403", resp.StatusCode)
	}
}

// TestDiskSweepRemovesCrashLeftovers is the regression test of temporary files
// from a crash mid-write, and job folders emptied by retention, staying forever:
// Sweep removes both once they are old, and leaves images, fresh temporary
// files (a write in progress) and folders still in use.
func TestDiskSweepRemovesCrashLeftovers(t *testing.T) {
	t.Parallel()
	d, root := openDisk(t)
	ctx := t.Context()
	const kept = "acme/p/1/a/0.png"
	if err := d.Put(ctx, kept, []byte("png"), "image/png"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	write := func(rel string, at time.Time) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		return p
	}
	staleTmp := write("acme/p/1/a/.tmp-0123456789abcdef", old)
	freshTmp := write("acme/p/1/a/.tmp-fedcba9876543210", time.Now())
	emptyJob := filepath.Join(root, "acme", "p", "2", "a")
	if err := os.MkdirAll(emptyJob, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{emptyJob, filepath.Dir(emptyJob)} {
		if err := os.Chtimes(dir, old, old); err != nil {
			t.Fatal(err)
		}
	}
	n, err := d.Sweep(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 3 {
		t.Errorf("Sweep = %d, %v; want the stale temporary file and the two empty folders", n, err)
	}
	for _, gone := range []string{staleTmp, filepath.Dir(emptyJob)} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s survived the sweep (%v)", gone, err)
		}
	}
	for _, stays := range []string{freshTmp, filepath.Join(root, kept)} {
		if _, err := os.Stat(stays); err != nil {
			t.Errorf("%s was swept: %v", stays, err)
		}
	}
	// A Put into a swept job folder recreates it.
	if err := d.Put(ctx, "acme/p/2/a/0.png", []byte("png"), "image/png"); err != nil {
		t.Fatal(err)
	}
}
