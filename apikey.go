package diffute

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// APIKeyPrefix starts every API key Diffute issues.
const APIKeyPrefix = "dfk_"

// NewAPIKeySecret returns a new random API key secret ("dfk_" and 43 URL-safe
// characters) and the hash under which it is stored.
func NewAPIKeySecret() (secret string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	secret = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashAPIKey(secret)
}

// HashAPIKey returns the stored hash of an API key as sent in x-api-key. The product
// page's form "<key>/<label>" is accepted: the label after the first '/' is ignored.
// Keys carry 256 random bits, so a plain SHA-256 is enough (no password stretching).
func HashAPIKey(header string) []byte {
	key, _, _ := strings.Cut(strings.TrimSpace(header), "/")
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}
