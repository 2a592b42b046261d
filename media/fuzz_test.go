package media_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute/media"
)

// FuzzVerifyMediaURL checks that Verify never panics on any key and query, that a URL
// made by URL verifies for its own key and no other, and that any change to the query
// that alters expires or sig is rejected.
func FuzzVerifyMediaURL(f *testing.F) {
	s := &media.Signer{Key: []byte("fuzzing key, thirty-two bytes..."), BaseURL: "https://img.example.com"}
	now := time.Unix(1_800_000_000, 0)
	f.Add("acme/web/1234567890123/Ansel_Adams/0.png", "expires=1800003600&sig=abc", int64(3600))
	f.Add("a b/%2F/é", "expires=1&expires=2&sig=", int64(-5))
	f.Add("", "sig=%ZZ;expires=9", int64(0))
	f.Fuzz(func(t *testing.T, key, rawQuery string, ttl int64) {
		q, _ := url.ParseQuery(rawQuery)
		if err := s.Verify(key, q, now); err == nil && rawQuery != "" {
			// Only a genuine signature may pass; forging one by chance is 2^-256.
			t.Fatalf("Verify accepted a fuzzed query %q for %q", rawQuery, key)
		}
		if strings.ContainsAny(key, "\n") {
			return // keys never hold a newline; MediaKey cannot make one
		}
		ttl %= 1 << 30 // about 34 years either way; keeps the Duration from overflowing
		u := s.URL(key, now.Add(time.Duration(ttl)*time.Second))
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatalf("URL(%q) = %q does not parse: %v", key, u, err)
		}
		got := strings.TrimPrefix(pu.Path, "/media/")
		if got != key {
			t.Fatalf("URL(%q) path decodes to %q", key, got)
		}
		err = s.Verify(got, pu.Query(), now)
		if ttl > 0 && err != nil {
			t.Fatalf("Verify of a URL valid for %ds: %v", ttl, err)
		}
		if ttl <= 0 && err == nil {
			t.Fatalf("Verify accepted a URL that expired %ds ago", -ttl)
		}
		if err := s.Verify(got+"x", pu.Query(), now); err == nil {
			t.Fatalf("a signature for %q verified key %q", key, got+"x")
		}
	})
}
