package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret, as in the Standard Webhooks
// specification: "whsec_" and the base64 of the key bytes.
const SecretPrefix = "whsec_"

// secretBytes is the length of a new signing key: 32 bytes, HMAC-SHA256's block
// strength (the specification allows 24 to 64).
const secretBytes = 32

// SignatureOverlap is how long a rotated-out secret keeps signing alongside the
// new one, so receivers can roll their configuration without dropping messages.
const SignatureOverlap = 24 * time.Hour

// NewSigningSecret returns a fresh random signing secret "whsec_<base64>".
func NewSigningSecret() string {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// ParseSigningSecret returns the key bytes of a "whsec_…" secret.
func ParseSigningSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errors.New("webhook: signing secret must start with " + SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) == 0 {
		return nil, errors.New("webhook: signing secret is not valid base64 after " + SecretPrefix)
	}
	return key, nil
}

// Sign returns the Standard Webhooks signature of one message:
// "v1," and the base64 HMAC-SHA256, under key, of "id.timestamp.body" with the
// timestamp in Unix seconds.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignatureHeader returns the webhook-signature header value: one signature per
// key, separated by spaces (two while a rotation overlaps).
func SignatureHeader(keys [][]byte, id string, ts time.Time, body []byte) string {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		sigs[i] = Sign(k, id, ts, body)
	}
	return strings.Join(sigs, " ")
}

// parseKeys turns secrets into keys, naming the first bad one by position only
// (a secret never appears in an error).
func parseKeys(secrets []string) ([][]byte, error) {
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		k, err := ParseSigningSecret(s)
		if err != nil {
			return nil, fmt.Errorf("signing secret %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
