package s3_test

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/mediatest"
	"github.com/diffute/diffute/s3"
	"github.com/diffute/diffute/s3/s3test"
)

// testBundle is what most tests need: a running server and a store on a bucket of
// the test's own.
type testBundle struct {
	srv   *s3test.Server
	cfg   s3.Config
	store *s3.Store
}

// setup starts a server and opens a store on a fresh bucket with prefix "media";
// adjust, when not nil, changes the configuration first.
func setup(t *testing.T, adjust func(*s3.Config)) *testBundle {
	t.Helper()
	srv := s3test.Start(t)
	cfg := srv.Config("b-"+randomHex(t, 6), "media")
	if adjust != nil {
		adjust(&cfg)
	}
	return &testBundle{srv: srv, cfg: cfg, store: openStore(t, cfg)}
}

func openStore(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	st, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Open(%v): %v", cfg, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// httpGet fetches u with a client of the test's own, closed at cleanup.
func httpGet(t *testing.T, u string) (int, http.Header, []byte) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, resp.Header, body
}

func readAll(t *testing.T, st *s3.Store, key string) ([]byte, diffute.MediaInfo) {
	t.Helper()
	r, info, err := st.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b, info
}

// TestMediaStoreSuite runs the suite every diffute.MediaStore passes, each subtest on
// a prefix of its own in one bucket of one server.
func TestMediaStoreSuite(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := "suite-" + randomHex(t, 4)
	mediatest.Run(t, func(t *testing.T) diffute.MediaStore {
		return openStore(t, srv.Config(bucket, "p"+randomHex(t, 6)))
	})
}

func TestPutOpenRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()
	key := diffute.MediaKey("org", "proj", 42, "sunset", 0, "webp")
	data := bytes.Repeat([]byte("RIFF webp-ish "), 5000)
	if err := b.store.Put(ctx, key, data, "image/webp"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, info := readAll(t, b.store, key)
	if !bytes.Equal(got, data) {
		t.Fatalf("Open returned %d bytes, want the %d put", len(got), len(data))
	}
	// One PUT: the server's ETag is then the MD5 of the bytes (a multipart upload's
	// would end in "-N").
	sum := md5.Sum(data)
	if want := `"` + hex.EncodeToString(sum[:]) + `"`; info.ETag != want {
		t.Errorf("ETag = %s, want %s (MD5 of a single-PUT object)", info.ETag, want)
	}
	if info.ContentType != "image/webp" || info.Size != int64(len(data)) {
		t.Errorf("info = %+v, want image/webp of %d bytes", info, len(data))
	}
	if d := time.Since(info.ModTime); d < -time.Minute || d > time.Minute {
		t.Errorf("ModTime = %v, want about now", info.ModTime)
	}
	// The object lives under the prefix in the bucket, which versitygw keeps as files.
	if _, err := os.Stat(filepath.Join(b.srv.Dir, b.cfg.Bucket, "media", filepath.FromSlash(key))); err != nil {
		t.Errorf("object not at {bucket}/media/{key} on the server: %v", err)
	}

	// A content type given at Put is the one served, even one the extension does not
	// imply; none given means the extension's.
	if err := b.store.Put(ctx, "x/a.bin", []byte("x"), "image/png; q=1"); err != nil {
		t.Fatal(err)
	}
	if _, info := readAll(t, b.store, "x/a.bin"); info.ContentType != "image/png; q=1" {
		t.Errorf("ContentType = %q, want the one given at Put", info.ContentType)
	}
	if err := b.store.Put(ctx, "x/b.jpeg", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	if _, info := readAll(t, b.store, "x/b.jpeg"); info.ContentType != "image/jpeg" {
		t.Errorf("ContentType = %q, want image/jpeg from the extension", info.ContentType)
	}
	if err := b.store.Put(ctx, "x/c.png", []byte("x"), "not a type"); diffute.ErrorCode(err) != diffute.EINVALID {
		t.Errorf("Put with a malformed content type: %v, want EINVALID", err)
	}
}

func TestOpenAbsent(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, key := range []string{"org/proj/1/p/0.png", "../media/x.png", "/abs.png"} {
		r, _, err := b.store.Open(t.Context(), key)
		if err == nil {
			r.Close()
			t.Fatalf("Open(%q) succeeded", key)
		}
		if code := diffute.ErrorCode(err); code != diffute.ENOTFOUND {
			t.Errorf("Open(%q): %v (code %q), want ENOTFOUND", key, err, code)
		}
	}
}

func TestPresignedURL(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()
	key, other := "org/proj/7/cat/0.png", "org/proj/7/cat/1.png"
	data := []byte("cat picture")
	for k, d := range map[string][]byte{key: data, other: []byte("other picture")} {
		if err := b.store.Put(ctx, k, d, "image/png"); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.store.URL(ctx, key, 10*time.Minute)
	if err != nil {
		t.Fatalf("URL: %v", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query().Get("X-Amz-Expires"); got != "600" {
		t.Errorf("X-Amz-Expires = %q, want 600", got)
	}
	status, hdr, body := httpGet(t, raw)
	if status != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET presigned URL: %d %q, want 200 %q", status, body, data)
	}
	if ct := hdr.Get("Content-Type"); ct != "image/png" {
		t.Errorf("Content-Type = %q, want image/png", ct)
	}

	tampered := map[string]string{
		"other key":      strings.Replace(raw, "/cat/0.png", "/cat/1.png", 1),
		"longer expiry":  strings.Replace(raw, "X-Amz-Expires=600", "X-Amz-Expires=6000", 1),
		"flipped sig":    flipLastHex(t, raw),
		"signature gone": stripQuery(t, raw, "X-Amz-Signature"),
	}
	for name, tu := range tampered {
		if tu == raw {
			t.Fatalf("%s: tampering left the URL unchanged", name)
		}
		status, _, body := httpGet(t, tu)
		// A signature that does not match is 403; a URL missing its signature is
		// malformed, which S3 answers with 400.
		if status != http.StatusForbidden && !(name == "signature gone" && status == http.StatusBadRequest) {
			t.Errorf("%s: status %d, want 403", name, status)
		}
		if bytes.Contains(body, []byte("picture")) {
			t.Errorf("%s: the server returned an object", name)
		}
	}

	// S3 refuses presigned URLs valid beyond seven days; longer lifetimes are capped.
	raw, err = b.store.URL(ctx, key, 30*24*time.Hour)
	if err != nil {
		t.Fatalf("URL with a 30-day ttl: %v", err)
	}
	if u, _ := url.Parse(raw); u.Query().Get("X-Amz-Expires") != "604800" {
		t.Errorf("30-day URL has X-Amz-Expires=%s, want 604800", u.Query().Get("X-Amz-Expires"))
	}
	if status, _, _ := httpGet(t, raw); status != http.StatusOK {
		t.Errorf("GET capped URL: status %d, want 200", status)
	}
	if _, err := b.store.URL(ctx, key, 0); diffute.ErrorCode(err) != diffute.EINVALID {
		t.Errorf("URL with ttl 0: %v, want EINVALID", err)
	}
	if _, err := b.store.URL(ctx, "../x.png", time.Hour); err == nil {
		t.Errorf("URL accepted an unsafe key")
	}
}

func flipLastHex(t *testing.T, raw string) string {
	t.Helper()
	i := strings.Index(raw, "X-Amz-Signature=")
	if i < 0 {
		t.Fatalf("no signature in %s", raw)
	}
	j := i + len("X-Amz-Signature=")
	c := byte('0')
	if raw[j] == '0' {
		c = '1'
	}
	return raw[:j] + string(c) + raw[j+1:]
}

func stripQuery(t *testing.T, raw, name string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del(name)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestWrongCredentialsRefusedAtOpen(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for name, adjust := range map[string]func(*s3.Config){
		"wrong secret":       func(c *s3.Config) { c.SecretKey += "x" },
		"unknown access":     func(c *s3.Config) { c.AccessKey = "nobody" },
		"wrong, to create":   func(c *s3.Config) { c.SecretKey = "wrong"; c.Bucket = "never-made" },
		"unknown, to create": func(c *s3.Config) { c.AccessKey = "nobody"; c.Bucket = "never-made" },
	} {
		cfg := b.cfg
		adjust(&cfg)
		st, err := s3.Open(t.Context(), cfg)
		if err == nil {
			st.Close()
			t.Errorf("%s: Open succeeded", name)
			continue
		}
		t.Logf("%s: %v", name, err)
		// versitygw answers 403 to a bad signature but 404 (XAdminUserNotFound) to an
		// unknown access key, where AWS answers 403: the server's reason must show,
		// and Open must not take it for a missing bucket.
		var resp minio.ErrorResponse
		if !errors.As(err, &resp) || resp.StatusCode < 400 {
			t.Errorf("%s: Open error %v does not wrap the server's refusal", name, err)
		}
		if resp.StatusCode == http.StatusForbidden && !strings.Contains(err.Error(), "access refused") {
			t.Errorf("%s: Open error %q does not say access was refused", name, err)
		}
		if strings.Contains(err.Error(), "does not exist") {
			t.Errorf("%s: Open error %q blames the bucket", name, err)
		}
		if strings.Contains(err.Error(), cfg.SecretKey) {
			t.Errorf("%s: Open error reveals the secret key", name)
		}
	}
	if _, err := os.Stat(filepath.Join(b.srv.Dir, "never-made")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a bucket was created with wrong credentials (stat: %v)", err)
	}
}

func TestMissingBucket(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	cfg := b.cfg
	cfg.Bucket, cfg.CreateBucket = "not-there", false
	if st, err := s3.Open(t.Context(), cfg); err == nil {
		st.Close()
		t.Fatal("Open of a missing bucket without create_bucket succeeded")
	} else if !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Open error %q does not say the bucket is missing", err)
	}
	cfg.CreateBucket = true
	openStore(t, cfg)
	openStore(t, cfg) // an existing bucket is fine too
	if fi, err := os.Stat(filepath.Join(b.srv.Dir, "not-there")); err != nil || !fi.IsDir() {
		t.Errorf("bucket not created: %v", err)
	}
}

// TestPublicBase makes the prefix publicly readable with a bucket policy, as an
// operator would behind a CDN, and checks that the URLs the store gives open without
// any signature, and that the policy (not the server) is what makes them open.
func TestPublicBase(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	base := "http://" + b.srv.Endpoint + "/" + b.cfg.Bucket + "/media"
	pub := b.cfg
	pub.PublicBase = base + "/"
	if err := pub.Validate(); err != nil {
		t.Fatal(err)
	}
	pub.PublicBase = base
	st := openStore(t, pub)
	ctx := t.Context()
	key := "org/proj/9/dog/0.png"
	if err := st.Put(ctx, key, []byte("dog picture"), "image/png"); err != nil {
		t.Fatal(err)
	}
	u, err := st.URL(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if want := base + "/" + key; u != want {
		t.Fatalf("URL = %q, want %q", u, want)
	}
	if status, _, _ := httpGet(t, u); status != http.StatusForbidden {
		t.Fatalf("GET before the bucket is public: status %d, want 403", status)
	}
	admin, err := minio.New(b.srv.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(b.srv.AccessKey, b.srv.SecretKey, ""), Region: s3test.Region,
		Transport: &http.Transport{DisableKeepAlives: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",` +
		`"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::` + b.cfg.Bucket + `/media/*"]}]}`
	if err := admin.SetBucketPolicy(ctx, b.cfg.Bucket, policy); err != nil {
		t.Fatalf("make the prefix public: %v", err)
	}
	status, _, body := httpGet(t, u)
	if status != http.StatusOK || string(body) != "dog picture" {
		t.Errorf("GET public URL: %d %q, want 200 %q", status, body, "dog picture")
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()
	key, keep := "org/proj/3/p/0.png", "org/proj/3/p/1.png"
	for _, k := range []string{key, keep} {
		if err := b.store.Put(ctx, k, []byte(k), "image/png"); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.store.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := b.store.Open(ctx, key); diffute.ErrorCode(err) != diffute.ENOTFOUND {
		t.Errorf("Open after Delete: %v, want ENOTFOUND", err)
	}
	if got, _ := readAll(t, b.store, keep); string(got) != keep {
		t.Errorf("Delete touched another object: %q", got)
	}
	if err := b.store.Delete(ctx, key); err != nil {
		t.Errorf("Delete of an absent object: %v, want nil", err)
	}
	if err := b.store.Delete(ctx, "a/../../x.png"); err == nil {
		t.Errorf("Delete accepted an unsafe key")
	}
}

// TestReadAcrossOverwrite checks that an open object stays the version it was opened
// as: reading on returns that version, and a Seek that needs a new request fails
// instead of splicing in bytes of the new version.
func TestReadAcrossOverwrite(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()
	key := "org/proj/5/p/0.png"
	v1 := bytes.Repeat([]byte("1"), 64<<10)
	v2 := bytes.Repeat([]byte("2"), 64<<10)
	if err := b.store.Put(ctx, key, v1, "image/png"); err != nil {
		t.Fatal(err)
	}
	r, info, err := b.store.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	head := make([]byte, 10)
	if _, err := io.ReadFull(r, head); err != nil || string(head) != "1111111111" {
		t.Fatalf("first read = %q, %v", head, err)
	}
	// Seeking within what is known (the end, then back to where the body stands)
	// needs no request.
	if n, err := r.Seek(0, io.SeekEnd); err != nil || n != info.Size {
		t.Fatalf("Seek(0, end) = %d, %v; want %d", n, err, info.Size)
	}
	if n, err := r.Seek(10, io.SeekStart); err != nil || n != 10 {
		t.Fatalf("Seek(10, start) = %d, %v", n, err)
	}
	if err := b.store.Put(ctx, key, v2, "image/png"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading on after an overwrite: %v", err)
	}
	if !bytes.Equal(slices.Concat(head, rest), v1) {
		t.Errorf("reading on after an overwrite did not return the version opened")
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	n, err := r.Read(make([]byte, 10))
	if err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("read after Seek to a replaced version = %d, %v; want a 'replaced' error", n, err)
	}
	if got, _ := readAll(t, b.store, key); !bytes.Equal(got, v2) {
		t.Errorf("a new Open does not see the new version")
	}
}

// TestSeekReads checks ranged reads after Seek on an unchanged object.
func TestSeekReads(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := t.Context()
	data := []byte("0123456789abcdef")
	if err := b.store.Put(ctx, "s/0.png", data, ""); err != nil {
		t.Fatal(err)
	}
	r, _, err := b.store.Open(ctx, "s/0.png")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, tc := range []struct {
		off    int64
		whence int
		want   string
	}{
		{4, io.SeekStart, "456789abcdef"},
		{-3, io.SeekEnd, "def"},
		{0, io.SeekStart, string(data)},
		{-6, io.SeekCurrent, "abcdef"},
		{100, io.SeekStart, ""},
	} {
		if _, err := r.Seek(tc.off, tc.whence); err != nil {
			t.Fatalf("Seek(%d, %d): %v", tc.off, tc.whence, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != tc.want {
			t.Errorf("after Seek(%d, %d): %q, %v; want %q", tc.off, tc.whence, got, err, tc.want)
		}
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Errorf("Seek to a negative offset succeeded")
	}
	r.Close()
	if _, err := r.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read after Close succeeded")
	}
}

// TestParseURLThenOpen goes the way the diffute binary does: a URL and the
// environment, then Open.
func TestParseURLThenOpen(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	cfg, err := s3.ParseURL(srv.URL("from-url", "media/v1"), srv.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, cfg)
	if err := st.Put(t.Context(), "a/0.png", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "from-url", "media", "v1", "a", "0.png")); err != nil {
		t.Errorf("object not under the URL's bucket and prefix: %v", err)
	}
}
