package mediatest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// Run checks store behaviour every diffute.MediaStore must have. open returns a fresh,
// empty store for each subtest and registers its own cleanup; the URLs it makes must
// be fetchable over HTTP from the test (for Disk, a server that serves /media/).
func Run(t *testing.T, open func(t *testing.T) diffute.MediaStore) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s diffute.MediaStore)
	}{
		{"PutOpen", testPutOpen},
		{"ContentTypes", testContentTypes},
		{"Overwrite", testOverwrite},
		{"Absent", testAbsent},
		{"Delete", testDelete},
		{"Seek", testSeek},
		{"UnsafeKeys", testUnsafeKeys},
		{"ConcurrentOverwrite", testConcurrentOverwrite},
		{"URLOpens", testURLOpens},
		{"URLTampered", testURLTampered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

func key(prompt string, index int, ext string) string {
	return diffute.MediaKey("org-1", "proj_1", 1234567890123, prompt, index, ext)
}

// get reads the object under k; it fails the test on any error.
func get(t *testing.T, s diffute.MediaStore, k string) ([]byte, diffute.MediaInfo) {
	t.Helper()
	r, info, err := s.Open(t.Context(), k)
	if err != nil {
		t.Fatalf("Open(%q): %v", k, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %q: %v", k, err)
	}
	return b, info
}

func put(t *testing.T, s diffute.MediaStore, k string, data []byte, ct string) {
	t.Helper()
	if err := s.Put(t.Context(), k, data, ct); err != nil {
		t.Fatalf("Put(%q): %v", k, err)
	}
}

func testPutOpen(t *testing.T, s diffute.MediaStore) {
	k := key("Ansel_Adams", 0, "png")
	data := []byte("\x89PNG\r\n\x1a\n not really a png, but bytes are bytes")
	before := time.Now().Add(-time.Minute)
	put(t, s, k, data, "image/png")
	got, info := get(t, s, k)
	if !bytes.Equal(got, data) {
		t.Errorf("Open returned %q, want %q", got, data)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("Size = %d, want %d", info.Size, len(data))
	}
	if info.ContentType != "image/png" {
		t.Errorf("ContentType = %q, want image/png", info.ContentType)
	}
	if len(info.ETag) < 3 || info.ETag[0] != '"' || info.ETag[len(info.ETag)-1] != '"' {
		t.Errorf("ETag = %q, want a quoted entity tag", info.ETag)
	}
	if info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(time.Minute)) {
		t.Errorf("ModTime = %v, want about now", info.ModTime)
	}
}

func testContentTypes(t *testing.T, s diffute.MediaStore) {
	for ext, ct := range map[string]string{"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"} {
		k := key("p", 0, ext)
		put(t, s, k, []byte(ext), ct)
		if _, info := get(t, s, k); info.ContentType != ct {
			t.Errorf("%s: ContentType = %q, want %q", ext, info.ContentType, ct)
		}
	}
}

func testOverwrite(t *testing.T, s diffute.MediaStore) {
	k := key("p", 1, "png")
	put(t, s, k, []byte("first version"), "image/png")
	_, info1 := get(t, s, k)
	put(t, s, k, []byte("second, longer version"), "image/png")
	got, info2 := get(t, s, k)
	if string(got) != "second, longer version" {
		t.Errorf("after overwrite Open returned %q", got)
	}
	if info1.ETag == info2.ETag {
		t.Errorf("ETag %q did not change when the content did", info1.ETag)
	}
}

func wantNotFound(t *testing.T, s diffute.MediaStore, k string) {
	t.Helper()
	r, _, err := s.Open(t.Context(), k)
	if err == nil {
		r.Close()
		t.Fatalf("Open(%q) succeeded, want ENOTFOUND", k)
	}
	if code := diffute.ErrorCode(err); code != diffute.ENOTFOUND {
		t.Fatalf("Open(%q) error %v has code %q, want %q", k, err, code, diffute.ENOTFOUND)
	}
}

func testAbsent(t *testing.T, s diffute.MediaStore) {
	wantNotFound(t, s, key("never_written", 0, "png"))
	// A prefix of a stored key is a "directory" on disk and a missing object on S3:
	// either way, not something to serve.
	put(t, s, key("p", 0, "png"), []byte("x"), "image/png")
	wantNotFound(t, s, "org-1/proj_1/1234567890123/p")
	wantNotFound(t, s, key("p", 0, "png")+"/more")
}

func testDelete(t *testing.T, s diffute.MediaStore) {
	k := key("p", 2, "png")
	put(t, s, k, []byte("x"), "image/png")
	if err := s.Delete(t.Context(), k); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotFound(t, s, k)
	if err := s.Delete(t.Context(), k); err != nil {
		t.Errorf("second Delete of an absent object: %v, want nil", err)
	}
	if err := s.Delete(t.Context(), key("never_written", 0, "png")); err != nil {
		t.Errorf("Delete of a never-written object: %v, want nil", err)
	}
}

func testSeek(t *testing.T, s diffute.MediaStore) {
	k := key("p", 3, "png")
	put(t, s, k, []byte("0123456789"), "image/png")
	r, _, err := s.Open(t.Context(), k)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.Seek(-4, io.SeekEnd); err != nil || n != 6 {
		t.Fatalf("Seek(-4, end) = %d, %v; want 6", n, err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "6789" {
		t.Fatalf("read after seek = %q, %v; want 6789", b, err)
	}
}

func testUnsafeKeys(t *testing.T, s diffute.MediaStore) {
	for _, k := range []string{
		"", "/etc/passwd", "../outside.png", "a/../../outside.png", "a/./b.png", "a//b.png",
		"a/b/", ".hidden.png", "a/.tmp-123", "a\\b.png", "a/b c.png", "a/\x00.png", "é.png",
		strings.Repeat("a", 2000) + ".png",
	} {
		if err := s.Put(t.Context(), k, []byte("x"), ""); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", k)
		}
		if r, _, err := s.Open(t.Context(), k); err == nil {
			r.Close()
			t.Errorf("Open(%q) succeeded, want an error", k)
		}
	}
}

// testConcurrentOverwrite checks atomicity: readers racing with writers see one whole
// version or the other, never a mix or a truncated file.
func testConcurrentOverwrite(t *testing.T, s diffute.MediaStore) {
	k := key("p", 4, "png")
	a := bytes.Repeat([]byte("A"), 256<<10)
	b := bytes.Repeat([]byte("B"), 128<<10)
	put(t, s, k, a, "image/png")
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 2 {
		wg.Go(func() {
			for i := range 10 {
				data := a
				if (i+w)%2 == 0 {
					data = b
				}
				if err := s.Put(ctx, k, data, "image/png"); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 20 {
				r, _, err := s.Open(ctx, k)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					errs <- fmt.Errorf("read a torn object of %d bytes", len(got))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func fetch(t *testing.T, u string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", u, err)
	}
	return resp, body
}

func testURLOpens(t *testing.T, s diffute.MediaStore) {
	k := key("Henri_Rousseau", 0, "jpeg")
	data := []byte("jpeg bytes")
	put(t, s, k, data, "image/jpeg")
	u, err := s.URL(t.Context(), k, time.Hour)
	if err != nil {
		t.Fatalf("URL: %v", err)
	}
	if pu, err := url.Parse(u); err != nil || !pu.IsAbs() {
		t.Fatalf("URL(%q) = %q, want an absolute URL", k, u)
	}
	resp, body := fetch(t, u)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET signed URL: status %d, body %q", resp.StatusCode, body)
	}
	if !bytes.Equal(body, data) {
		t.Errorf("GET signed URL returned %q, want %q", body, data)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "image/jpeg" {
		t.Errorf("Content-Type = %q, want image/jpeg", ct)
	}
}

func testURLTampered(t *testing.T, s diffute.MediaStore) {
	k := key("p", 0, "png")
	other := key("p", 1, "png")
	put(t, s, k, []byte("secret image"), "image/png")
	put(t, s, other, []byte("other image"), "image/png")
	u, err := s.URL(t.Context(), k, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Point a genuine signature at another object: the signature must cover the key.
	swapped := strings.Replace(u, "/p/0.png", "/p/1.png", 1)
	if swapped == u {
		t.Fatalf("URL %q does not contain the key's path", u)
	}
	resp, body := fetch(t, swapped)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET with a signature for another key: status %d, want 403", resp.StatusCode)
	}
	if bytes.Contains(body, []byte("other image")) {
		t.Errorf("GET with a signature for another key returned the object")
	}
}
