package sqlite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/diffute/diffute"
)

// sealedPrefix marks a webhook signing secret stored encrypted. Rows without it
// were written before a key was set and are read as they are.
const sealedPrefix = "sealed:v1:"

// SetSecretKey makes the store keep webhook signing secrets encrypted at rest
// (AES-256-GCM under key, 32 bytes, bound to the project), so a copy of the
// database file alone does not give them away. Call it right after Open, before
// the store is used; the same key must be given on every later Open.
func (db *DB) SetSecretKey(key []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil || len(key) != 32 {
		return errors.New("sqlite: the secret key must be 32 bytes")
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("sqlite: secret key: %w", err)
	}
	db.secretAEAD.Store(&aead)
	return nil
}

func (db *DB) sealSecret(org, project, secret string) (string, error) {
	p := db.secretAEAD.Load()
	if p == nil {
		return secret, nil
	}
	aead := *p
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(secret)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("sqlite: seal secret: %w", err)
	}
	sealed := aead.Seal(nonce, nonce, []byte(secret), []byte(org+"/"+project))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(sealed), nil
}

func (db *DB) openSecret(org, project, stored string) (string, error) {
	b64, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, nil
	}
	p := db.secretAEAD.Load()
	if p == nil {
		return "", diffute.Errorf(diffute.EINTERNAL, "webhook signing secrets are encrypted and no key was given (webhook-secrets.key in the data directory)")
	}
	aead := *p
	sealed, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(sealed) < aead.NonceSize() {
		return "", diffute.Errorf(diffute.EINTERNAL, "a stored webhook signing secret is corrupt")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(org+"/"+project))
	if err != nil {
		return "", diffute.Errorf(diffute.EINTERNAL, "a webhook signing secret does not decrypt with this key (was webhook-secrets.key replaced?)")
	}
	return string(plain), nil
}
