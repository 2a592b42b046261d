package webhook

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newTestSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	s := NewSender(cfg)
	t.Cleanup(s.Close)
	return s
}

func TestForbiddenDestinationsRefusedBeforeConnecting(t *testing.T) {
	t.Parallel()
	// A real receiver on loopback: if the guard let any loopback form through,
	// this counter would move.
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]

	hosts := []string{
		"127.0.0.1", "127.1.2.3", "[::1]", "0.0.0.0", "[::]", "10.0.0.1", "172.16.5.4", "172.31.255.255",
		"192.168.1.1", "169.254.169.254", "[fd00:ec2::254]", "[fc00::1]", "[fe80::1]", "100.64.0.1",
		"100.127.255.254", "224.0.0.1", "239.255.255.250", "255.255.255.255", "[ff02::1]",
		"[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]", "[64:ff9b::7f00:1]",
		"[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::]", "[2002:c0a8:101::1]", "[::127.0.0.1]", "198.18.0.1",
		"[64:ff9b:1::1]", "[2001:0:4136:e378:8000:63bf:80ff:fffe]", // Teredo, client 127.0.0.1
	}
	s := newTestSender(t, Config{Timeout: 2 * time.Second})
	for _, h := range hosts {
		t.Run(h, func(t *testing.T) {
			t.Parallel()
			res := s.Send(t.Context(), Message{ID: "msg_1", URL: "http://" + h + ":" + port + "/hook", Body: []byte("{}")})
			if !errors.Is(res.Err, ErrForbiddenAddress) {
				t.Errorf("Send to %s: err = %v, want ErrForbiddenAddress", h, res.Err)
			}
			if res.StatusCode != 0 {
				t.Errorf("Send to %s got an answer %d", h, res.StatusCode)
			}
		})
	}
	t.Cleanup(func() {
		if n := hits.Load(); n != 0 {
			t.Errorf("the loopback receiver was reached %d times", n)
		}
	})
}

func TestCheckAddrAllowsPublicAndConfigured(t *testing.T) {
	t.Parallel()
	var c Config
	for _, s := range []string{"93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::"} {
		if err := c.CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want allowed", s, err)
		}
	}
	c.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	if err := c.CheckAddr(netip.MustParseAddr("10.1.2.3")); err != nil {
		t.Errorf("allowed CIDR refused: %v", err)
	}
	if err := c.CheckAddr(netip.MustParseAddr("10.2.0.1")); err == nil {
		t.Error("10.2.0.1 allowed by 10.1.0.0/16")
	}
}

func TestHostNameResolvingToLoopbackRefused(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]

	s := newTestSender(t, Config{Timeout: 2 * time.Second})
	s.lookup = func(context.Context, string, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	res := s.Send(t.Context(), Message{ID: "m", URL: "http://hooks.example.com:" + port + "/", Body: []byte("{}")})
	if !errors.Is(res.Err, ErrForbiddenAddress) {
		t.Errorf("err = %v, want ErrForbiddenAddress", res.Err)
	}
	// The system resolver, too: localhost comes from /etc/hosts.
	s2 := newTestSender(t, Config{Timeout: 2 * time.Second})
	res = s2.Send(t.Context(), Message{ID: "m", URL: "http://localhost:" + port + "/", Body: []byte("{}")})
	if !errors.Is(res.Err, ErrForbiddenAddress) {
		t.Errorf("localhost: err = %v, want ErrForbiddenAddress", res.Err)
	}
	if hits.Load() != 0 {
		t.Error("the receiver was reached")
	}

	// Allowed when the operator says so.
	s3 := newTestSender(t, Config{AllowPrivate: true, Timeout: 2 * time.Second})
	s3.lookup = s.lookup
	res = s3.Send(t.Context(), Message{ID: "m", URL: "http://hooks.example.com:" + port + "/", Body: []byte("{}")})
	if res.Err != nil || res.StatusCode != 200 || hits.Load() != 1 {
		t.Errorf("AllowPrivate: %+v, hits %d", res, hits.Load())
	}
}

// receiver is a real HTTP server on 127.0.0.1 that records what it got.
type receiver struct {
	srv  *httptest.Server
	req  atomic.Pointer[http.Request]
	body atomic.Pointer[[]byte]
	hits atomic.Int32
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.req.Store(req)
		r.body.Store(&b)
		r.hits.Add(1)
		h(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func TestSendToReceivers(t *testing.T) {
	t.Parallel()
	cfg := Config{AllowPrivate: true, Timeout: 300 * time.Millisecond}
	msg := func(url string) Message {
		return Message{ID: "msg_stable", URL: url, Secret: "tok en", Body: []byte(`{"job_id":1}`)}
	}

	t.Run("200", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "thanks\x00\x01 friend") })
		res := newTestSender(t, cfg).Send(t.Context(), msg(r.srv.URL+"/hook"))
		if res.Err != nil || res.StatusCode != 200 || res.Excerpt != "thanks friend" || res.Latency <= 0 {
			t.Fatalf("result = %+v", res)
		}
		req := r.req.Load()
		for k, want := range map[string]string{
			"Content-Type": "application/json", "Authorization": "Bearer tok en", "Authentication": "Bearer tok en",
			"User-Agent": UserAgent, "Webhook-Id": "msg_stable",
		} {
			if got := req.Header.Get(k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
		if req.Method != http.MethodPost || req.URL.Path != "/hook" || string(*r.body.Load()) != `{"job_id":1}` {
			t.Errorf("request %s %s body %s", req.Method, req.URL.Path, *r.body.Load())
		}
	})
	t.Run("NoSecretNoAuthHeaders", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t, func(http.ResponseWriter, *http.Request) {})
		m := msg(r.srv.URL)
		m.Secret = ""
		if res := newTestSender(t, cfg).Send(t.Context(), m); res.Err != nil {
			t.Fatal(res.Err)
		}
		if h := r.req.Load().Header; h.Get("Authorization") != "" || h.Get("Authentication") != "" {
			t.Errorf("auth headers sent without a secret: %v", h)
		}
	})
	t.Run("500", func(t *testing.T) {
		t.Parallel()
		big := strings.Repeat("x", 10000)
		r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500); io.WriteString(w, big) })
		res := newTestSender(t, cfg).Send(t.Context(), msg(r.srv.URL))
		var se *StatusError
		if !errors.As(res.Err, &se) || se.Code != 500 || res.StatusCode != 500 || len(res.Excerpt) != maxExcerpt {
			t.Errorf("result = %+v (excerpt %d bytes)", res, len(res.Excerpt))
		}
	})
	t.Run("301NotFollowed", func(t *testing.T) {
		t.Parallel()
		var followed atomic.Int32
		target := newReceiver(t, func(http.ResponseWriter, *http.Request) { followed.Add(1) })
		r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
			http.Redirect(w, req, target.srv.URL, http.StatusMovedPermanently)
		})
		res := newTestSender(t, cfg).Send(t.Context(), msg(r.srv.URL))
		if res.StatusCode != 301 || res.Err == nil || followed.Load() != 0 {
			t.Errorf("result = %+v, followed %d", res, followed.Load())
		}
	})
	t.Run("410", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(410) })
		res := newTestSender(t, cfg).Send(t.Context(), msg(r.srv.URL))
		if res.StatusCode != http.StatusGone || res.Err == nil {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("429RetryAfter", func(t *testing.T) {
		t.Parallel()
		r := newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(429)
		})
		res := newTestSender(t, cfg).Send(t.Context(), msg(r.srv.URL))
		if res.StatusCode != 429 || res.RetryAfter != 2*time.Minute || res.Err == nil {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("HangPastTimeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		r := newReceiver(t, func(w http.ResponseWriter, req *http.Request) {
			select {
			case <-release:
			case <-req.Context().Done():
			}
		})
		t.Cleanup(func() { close(release) })
		start := time.Now()
		res := newTestSender(t, cfg).Send(t.Context(), msg(r.srv.URL))
		if res.Err == nil || res.StatusCode != 0 {
			t.Errorf("result = %+v, want a timeout", res)
		}
		if el := time.Since(start); el < cfg.Timeout || el > cfg.Timeout+2*time.Second {
			t.Errorf("took %v with timeout %v", el, cfg.Timeout)
		}
	})
}

// Proxy variables are ignored: a proxy would make the connection, so the dial-time
// guard would check the proxy's address instead of the receiver's. (Go's
// ProxyFromEnvironment also skips loopback, so this is checked on the transport.)
func TestProxyIgnored(t *testing.T) {
	t.Parallel()
	tr, ok := newTestSender(t, Config{}).client.Transport.(*http.Transport)
	if !ok || tr.Proxy != nil {
		t.Errorf("transport %T has a Proxy function", tr)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "0": 0, "5": 5 * time.Second, "-3": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestRetrySchedule(t *testing.T) {
	t.Parallel()
	var c Config
	if c.MaxAttempts() != 8 {
		t.Errorf("default MaxAttempts = %d, want 8", c.MaxAttempts())
	}
	total := time.Duration(0)
	for a := 1; a < 8; a++ {
		d, ok := c.NextRetry(a)
		want := DefaultRetrySchedule[a]
		if !ok || d < want*9/10 || d > want*11/10 {
			t.Errorf("NextRetry(%d) = %v, %v; want %v ±10%%", a, d, ok, want)
		}
		total += d
	}
	if total < 24*time.Hour {
		t.Errorf("schedule spans %v, want over a day", total)
	}
	if _, ok := c.NextRetry(8); ok {
		t.Error("NextRetry after the last attempt reported a retry")
	}
	if err := (Config{Timeout: -1, RetrySchedule: []time.Duration{-1}}).Validate(); err == nil {
		t.Error("Validate accepted negative durations")
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

// TestAllowPrivateNeverOpensLinkLocal is the regression test of
// --webhook-allow-private opening the cloud metadata endpoints: it opens
// loopback and private ranges, and no link-local address in any form.
func TestAllowPrivateNeverOpensLinkLocal(t *testing.T) {
	t.Parallel()
	c := Config{AllowPrivate: true}
	for _, s := range []string{"169.254.169.254", "169.254.1.1", "fd00:ec2::254", "fe80::1", "::ffff:169.254.169.254",
		"64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "0.0.0.0", "100.64.0.1"} {
		if err := c.CheckAddr(netip.MustParseAddr(s)); !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("AllowPrivate: CheckAddr(%s) = %v, want refused", s, err)
		}
	}
	for _, s := range []string{"127.0.0.1", "::1", "10.1.2.3", "172.16.5.4", "192.168.1.1", "fd12:3456::1", "8.8.8.8"} {
		if err := c.CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("AllowPrivate: CheckAddr(%s) = %v, want allowed", s, err)
		}
	}
	// Not even a CIDR the operator names opens the metadata endpoint.
	wide := Config{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}}
	if err := wide.CheckAddr(netip.MustParseAddr("169.254.169.254")); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("AllowCIDRs 169.254.0.0/16: metadata endpoint = %v, want refused", err)
	}
}
