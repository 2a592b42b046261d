package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// maxResponseRead caps how much of a receiver's answer is read.
	maxResponseRead = 4 << 10
	// maxExcerpt is how much of it is kept in the delivery log.
	maxExcerpt = 256
	// UserAgent identifies Diffute's webhook requests.
	UserAgent = "Diffute-Webhooks/1"
)

// Message is one webhook to send. ID stays the same on every attempt.
type Message struct {
	ID     string
	URL    string
	Secret string // sent as a bearer token when not empty; never logged
	Body   []byte
	// SigningSecrets ("whsec_…") sign the message, one webhook-signature entry
	// each; none leaves the message unsigned. Never logged.
	SigningSecrets []string
}

// Result is the outcome of one attempt. Err is nil exactly when the receiver
// answered 2xx.
type Result struct {
	StatusCode int // 0 when no answer arrived
	Latency    time.Duration
	Err        error
	Excerpt    string        // the start of the answer's body
	RetryAfter time.Duration // from a 429 or 503 answer's Retry-After, 0 if none
}

// StatusError is Result.Err when the receiver answered with a non-2xx status.
type StatusError struct{ Code int }

func (e *StatusError) Error() string {
	if e.Code >= 300 && e.Code < 400 {
		return fmt.Sprintf("webhook: receiver answered HTTP %d (redirects are not followed)", e.Code)
	}
	return fmt.Sprintf("webhook: receiver answered HTTP %d", e.Code)
}

// Sender makes webhook attempts. It is safe for concurrent use; Close releases its
// idle connections.
type Sender struct {
	cfg    Config
	client *http.Client
	// lookup resolves host names; tests replace it to resolve names to internal
	// addresses without a DNS server.
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// now is the clock of webhook-timestamp; tests fix it.
	now func() time.Time
}

// NewSender returns a Sender for cfg (defaults applied).
func NewSender(cfg Config) *Sender {
	cfg = cfg.WithDefaults()
	s := &Sender{cfg: cfg, lookup: net.DefaultResolver.LookupNetIP, now: time.Now}
	transport := &http.Transport{
		Proxy:                 nil, // proxy variables would route around the dial-time guard
		DialContext:           s.dial,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   32, // one busy receiver takes many deliveries at once
		IdleConnTimeout:       90 * time.Second,
	}
	s.client = &http.Client{
		Transport: transport,
		// A redirect could lead anywhere the sender did not check the URL for;
		// the receiver must give its final URL.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       cfg.Timeout,
	}
	return s
}

// Close closes idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// dial resolves the host and dials each address through a dialer whose Control
// hook refuses internal addresses.
func (s *Sender) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if addrs, err = s.lookup(ctx, "ip", host); err != nil {
		return nil, fmt.Errorf("webhook: resolve %s: %w", host, err)
	}
	d := &net.Dialer{Control: s.cfg.control}
	var errs []error
	for _, ip := range addrs {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("webhook: %s resolved to no address", host)
	}
	return nil, errors.Join(errs...)
}

// Send makes one attempt to deliver m.
func (s *Sender) Send(ctx context.Context, m Message) Result {
	start := time.Now()
	res := s.send(ctx, m)
	res.Latency = time.Since(start)
	return res
}

func (s *Sender) send(ctx context.Context, m Message) Result {
	u, err := url.Parse(m.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Result{Err: fmt.Errorf("webhook: invalid URL %q", m.URL)}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	keys, err := parseKeys(m.SigningSecrets)
	if err != nil {
		return Result{Err: fmt.Errorf("webhook: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(m.Body))
	if err != nil {
		return Result{Err: fmt.Errorf("webhook: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("webhook-id", m.ID)
	// The timestamp is the attempt's, not the message's: receivers reject stale
	// timestamps to stop replays, and a retry hours later must still pass.
	now := s.now()
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	if len(keys) > 0 {
		req.Header.Set("webhook-signature", SignatureHeader(keys, m.ID, now, m.Body))
	}
	if m.Secret != "" {
		req.Header.Set("Authorization", "Bearer "+m.Secret)
		// The product page names the header "Authentication"; receivers written
		// against it read that one.
		req.Header.Set("Authentication", "Bearer "+m.Secret)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return Result{Err: fmt.Errorf("webhook: %w", err)}
	}
	defer resp.Body.Close()
	// A body cut short or over the cap does not change what the status said.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	res := Result{StatusCode: resp.StatusCode, Excerpt: excerpt(body)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.Err = &StatusError{Code: resp.StatusCode}
	}
	return res
}

// excerpt keeps the start of a response body as valid, printable UTF-8.
func excerpt(b []byte) string {
	if len(b) > maxExcerpt {
		b = b[:maxExcerpt]
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date; 0 when absent
// or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(min(secs, 7*24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
