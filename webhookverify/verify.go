package webhookverify

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far webhook-timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// maxBody caps the body Request reads; Diffute's messages are a few kilobytes.
const maxBody = 4 << 20

// Errors returned (wrapped) by Verify and Request.
var (
	ErrMissingHeaders = errors.New("webhookverify: webhook-id, webhook-timestamp or webhook-signature missing")
	ErrStaleTimestamp = errors.New("webhookverify: webhook-timestamp outside the tolerance")
	ErrNoMatch        = errors.New("webhookverify: no signature matches")
	ErrBearer         = errors.New("webhookverify: bearer secret missing or wrong")
)

// Verifier checks webhook requests. The zero value checks nothing and rejects
// everything: set at least SigningSecrets.
type Verifier struct {
	// SigningSecrets are the project's "whsec_…" secrets (GET
	// /{org}/{project}/webhook-secret). A request passes when one signature matches
	// one secret, so during a rotation both may be listed.
	SigningSecrets []string
	// Bearer, when set, is the secret the job was submitted with; the request's
	// Authorization (or Authentication) header must be "Bearer <Bearer>".
	Bearer string
	// Tolerance bounds clock skew and replay; 0 means DefaultTolerance.
	Tolerance time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Request reads r's body and verifies it: bearer secret (when Bearer is set) and
// signature. It returns the body, which the caller must not trust on error.
func (v *Verifier) Request(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("webhookverify: read body: %w", err)
	}
	if err := v.CheckBearer(r.Header); err != nil {
		return body, err
	}
	return body, v.Verify(body, r.Header)
}

// CheckBearer checks the bearer secret in h when Bearer is set (nil otherwise).
// Request calls it; use it with Verify when the body was read elsewhere.
func (v *Verifier) CheckBearer(h http.Header) error {
	if v.Bearer != "" && !bearerMatches(h, v.Bearer) {
		return ErrBearer
	}
	return nil
}

func bearerMatches(h http.Header, secret string) bool {
	want := []byte("Bearer " + secret)
	for _, name := range []string{"Authorization", "Authentication"} {
		if got := h.Get(name); got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1 {
			return true
		}
	}
	return false
}

// Verify checks the Standard Webhooks headers of a message with body.
func (v *Verifier) Verify(body []byte, h http.Header) error {
	id, tsHeader, sigHeader := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || tsHeader == "" || sigHeader == "" {
		return ErrMissingHeaders
	}
	secs, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not Unix seconds", ErrStaleTimestamp, tsHeader)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	if d := now().Sub(time.Unix(secs, 0)); d > tol || d < -tol {
		return ErrStaleTimestamp
	}
	for _, secret := range v.SigningSecrets {
		key, err := decodeSecret(secret)
		if err != nil {
			return err
		}
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.", id, tsHeader)
		mac.Write(body)
		want := mac.Sum(nil)
		for _, sig := range strings.Fields(sigHeader) {
			b64, ok := strings.CutPrefix(sig, "v1,")
			if !ok {
				continue // another scheme (v1a, …): not ours to judge
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return ErrNoMatch
}

func decodeSecret(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, errors.New("webhookverify: a signing secret is not whsec_ followed by base64")
	}
	return key, nil
}
