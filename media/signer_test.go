package media_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/media"
)

func newSigner(t testing.TB) *media.Signer {
	t.Helper()
	key, err := media.LoadOrCreateKey(filepath.Join(t.TempDir(), "media.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &media.Signer{Key: key, BaseURL: "https://img.example.com/prefix"}
}

// parse splits a signed URL into the unescaped key and the query, as the server sees them.
func parse(t testing.TB, s *media.Signer, u string) (string, url.Values) {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("parse %q: %v", u, err)
	}
	prefix := strings.TrimPrefix(s.BaseURL, "https://img.example.com") + "/media/"
	if !strings.HasPrefix(pu.Path, prefix) {
		t.Fatalf("URL %q path does not start with %q", u, prefix)
	}
	return strings.TrimPrefix(pu.Path, prefix), pu.Query()
}

func wantForbidden(t *testing.T, err error, what string) {
	t.Helper()
	if code := diffute.ErrorCode(err); code != diffute.EFORBIDDEN {
		t.Errorf("%s: Verify = %v (code %q), want %q", what, err, code, diffute.EFORBIDDEN)
	}
}

func TestSignerRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	now := time.Unix(1_800_000_000, 0)
	const key = "acme/web/1234567890123/Ansel_Adams/0.png"
	u := s.URL(key, now.Add(time.Hour))
	if !strings.HasPrefix(u, "https://img.example.com/prefix/media/"+key+"?expires=1800003600&sig=") {
		t.Fatalf("URL = %q", u)
	}
	k, q := parse(t, s, u)
	if k != key {
		t.Fatalf("key from URL = %q, want %q", k, key)
	}
	if err := s.Verify(k, q, now); err != nil {
		t.Fatalf("Verify of a fresh URL: %v", err)
	}
	if err := s.Verify(k, q, now.Add(59*time.Minute)); err != nil {
		t.Errorf("Verify just before expiry: %v", err)
	}
	wantForbidden(t, s.Verify(k, q, now.Add(time.Hour)), "at expiry")
	wantForbidden(t, s.Verify(k, q, now.Add(48*time.Hour)), "long after expiry")
}

func TestSignerRejectsTampering(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	now := time.Unix(1_800_000_000, 0)
	const key = "acme/web/1234567890123/p/0.png"
	k, q := parse(t, s, s.URL(key, now.Add(time.Hour)))
	with := func(name, value string) url.Values {
		c := url.Values{}
		for n, v := range q {
			c[n] = append([]string(nil), v...)
		}
		c.Set(name, value)
		return c
	}
	sig := q.Get("sig")
	flipped := []byte(sig)
	if flipped[3] == 'A' {
		flipped[3] = 'B'
	} else {
		flipped[3] = 'A'
	}
	exp, _ := strconv.ParseInt(q.Get("expires"), 10, 64)
	for _, tc := range []struct {
		name string
		key  string
		q    url.Values
	}{
		{"other key", "acme/web/1234567890123/p/1.png", q},
		{"other tenant", "evil/web/1234567890123/p/0.png", q},
		{"key prefix", "acme/web/1234567890123/p/0", q},
		{"later expiry", k, with("expires", strconv.FormatInt(exp+86400, 10))},
		{"earlier expiry", k, with("expires", strconv.FormatInt(exp-1, 10))},
		{"flipped signature byte", k, with("sig", string(flipped))},
		{"truncated signature", k, with("sig", sig[:len(sig)-2])},
		{"padded signature", k, with("sig", sig+"=")},
		{"empty signature", k, with("sig", "")},
		{"signature not base64", k, with("sig", "!!!!")},
		{"no signature", k, url.Values{"expires": q["expires"]}},
		{"no expiry", k, url.Values{"sig": q["sig"]}},
		{"expiry not a number", k, with("expires", "soon")},
		{"negative expiry", k, with("expires", "-1")},
		{"two signatures", k, url.Values{"expires": q["expires"], "sig": {sig, sig}}},
		{"two expiries", k, url.Values{"expires": {q.Get("expires"), q.Get("expires")}, "sig": q["sig"]}},
	} {
		wantForbidden(t, s.Verify(tc.key, tc.q, now), tc.name)
	}
	other := &media.Signer{Key: []byte("another key of thirty-two bytes!"), BaseURL: s.BaseURL}
	wantForbidden(t, other.Verify(k, q, now), "signed with another key")
}

func TestSignerValidate(t *testing.T) {
	t.Parallel()
	good := []byte("0123456789abcdef0123456789abcdef")
	for _, tc := range []struct {
		s  media.Signer
		ok bool
	}{
		{media.Signer{Key: good, BaseURL: "http://127.0.0.1:8080"}, true},
		{media.Signer{Key: good, BaseURL: "https://cdn.example.com/base"}, true},
		{media.Signer{Key: good[:15], BaseURL: "http://127.0.0.1:8080"}, false},
		{media.Signer{Key: nil, BaseURL: "http://127.0.0.1:8080"}, false},
		{media.Signer{Key: good, BaseURL: ""}, false},
		{media.Signer{Key: good, BaseURL: "127.0.0.1:8080"}, false},
		{media.Signer{Key: good, BaseURL: "ftp://example.com"}, false},
		{media.Signer{Key: good, BaseURL: "https://example.com/?x=1"}, false},
	} {
		if err := tc.s.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%q, %d-byte key) = %v, want ok=%v", tc.s.BaseURL, len(tc.s.Key), err, tc.ok)
		}
	}
	// A signer without a key must not accept anything, not even what it signed itself.
	empty := &media.Signer{BaseURL: "http://127.0.0.1"}
	now := time.Now()
	pu, err := url.Parse(empty.URL("a.png", now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Verify("a.png", pu.Query(), now); err == nil {
		t.Error("a signer with no key verified a URL")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "media.key")
	k1, err := media.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != media.KeySize {
		t.Fatalf("key is %d bytes, want %d", len(k1), media.KeySize)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
	k2, err := media.LoadOrCreateKey(path)
	if err != nil || string(k2) != string(k1) {
		t.Fatalf("second load = %x, %v; want the same key %x", k2, err, k1)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want only the key (no temporary files)", len(entries))
	}

	// Others able to read the key could forge URLs: refuse it.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := media.LoadOrCreateKey(path); err == nil {
		t.Error("a world-readable key file was accepted")
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := media.LoadOrCreateKey(short); err == nil {
		t.Error("a 4-byte key file was accepted")
	}
}

// TestLoadOrCreateKeyRace checks that concurrent first starts agree on one key.
func TestLoadOrCreateKeyRace(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "media.key")
	keys := make([][]byte, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = media.LoadOrCreateKey(path) })
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if string(keys[i]) != string(keys[0]) {
			t.Fatalf("caller %d got a different key", i)
		}
	}
}

// TestSignerAcceptsTheCanonicalFormOnly is the regression test of signed URLs
// verifying in other spellings of the same values: base64 with non-zero
// trailing bits, and expires with a sign or leading zeros. Each would be a
// second URL for one grant.
func TestSignerAcceptsTheCanonicalFormOnly(t *testing.T) {
	t.Parallel()
	s := newSigner(t)
	now := time.Unix(1_800_000_000, 0)
	k, q := parse(t, s, s.URL("acme/web/1234567890123/p/0.png", now.Add(time.Hour)))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig, exp := q.Get("sig"), q.Get("expires")
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	// 32 bytes are 43 characters: the last carries 2 bits of data and 4 zero
	// bits; setting one of those spells the same bytes another way.
	trailing := sig[:len(sig)-1] + string(alphabet[last^1])
	for name, v := range map[string]url.Values{
		"signature with trailing bits": {"expires": {exp}, "sig": {trailing}},
		"expires with a plus sign":     {"expires": {"+" + exp}, "sig": {sig}},
		"expires with a leading zero":  {"expires": {"0" + exp}, "sig": {sig}},
	} {
		wantForbidden(t, s.Verify(k, v, now), name)
	}
	if err := s.Verify(k, q, now); err != nil {
		t.Fatalf("the canonical URL: %v", err)
	}
}
