package diffute_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/diffute/diffute"
)

// FuzzCheckWebhookURL checks the submission-time webhook URL check on any
// string: no panic; a refusal is a 422 naming the "webhook" field; an accepted
// URL parses to http or https with a host, no user info, no fragment, within
// the length limit.
func FuzzCheckWebhookURL(f *testing.F) {
	for _, s := range []string{"https://example.com/hook", "http://[::1]:8080/x?y=1", "https://user:pw@example.com/",
		"ftp://example.com", "https://example.com/#frag", "https://", "http://%zz", "https://exa mple.com", "HTTPS://EXAMPLE.COM",
		"http://169.254.169.254/latest/meta-data", "https://example.com:99999/", "//example.com/x"} {
		f.Add(s)
	}
	const maxLen = 2048
	f.Fuzz(func(t *testing.T, s string) {
		err := diffute.CheckWebhookURL(s, maxLen)
		if err != nil {
			if diffute.ErrorCode(err) != diffute.EUNPROCESSABLE || diffute.ErrorField(err) != "webhook" {
				t.Fatalf("CheckWebhookURL(%q) = %v: want a 422 naming webhook", s, err)
			}
			return
		}
		u, perr := url.Parse(s)
		switch {
		case perr != nil:
			t.Fatalf("accepted %q, which does not parse: %v", s, perr)
		case u.Scheme != "http" && u.Scheme != "https":
			t.Fatalf("accepted %q with scheme %q", s, u.Scheme)
		case u.Hostname() == "", u.User != nil, u.Fragment != "", len(s) > maxLen:
			t.Fatalf("accepted %q (host %q, user %v, fragment %q)", s, u.Hostname(), u.User, u.Fragment)
		case strings.ContainsAny(u.Host, " \t\n"):
			t.Fatalf("accepted %q with whitespace in the host", s)
		}
	})
}
