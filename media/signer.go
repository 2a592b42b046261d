package media

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/diffute/diffute"
)

// KeySize is the length of the HMAC key that LoadOrCreateKey makes.
const KeySize = 32

// minKeySize is the shortest key Signer accepts: anything shorter makes URLs that can
// be forged by brute force.
const minKeySize = 16

// Signer makes and checks signed, expiring media URLs:
//
//	BaseURL + "/media/" + key + "?expires=<unix seconds>&sig=<base64url HMAC-SHA256>"
//
// The MAC covers the key and the expiry, so neither can be changed without the
// signature failing. Signer is safe for concurrent use once its fields are set.
type Signer struct {
	Key     []byte // HMAC-SHA256 key, at least 16 bytes (LoadOrCreateKey makes 32)
	BaseURL string // scheme://host[:port][/prefix], without a trailing slash
}

// Validate reports a configuration that cannot make trustworthy URLs.
func (s *Signer) Validate() error {
	if len(s.Key) < minKeySize {
		return fmt.Errorf("media: signer key is %d bytes, need at least %d", len(s.Key), minKeySize)
	}
	u, err := url.Parse(s.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("media: signer base URL %q must be an absolute http(s) URL", s.BaseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("media: signer base URL %q must not have a query or fragment", s.BaseURL)
	}
	return nil
}

// URL returns the URL under which key can be fetched until expires (rounded down to the
// second).
func (s *Signer) URL(key string, expires time.Time) string {
	exp := expires.Unix()
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.TrimSuffix(s.BaseURL, "/") + "/media/" + strings.Join(segs, "/") +
		"?expires=" + strconv.FormatInt(exp, 10) + "&sig=" + s.sign(key, exp)
}

// Verify checks the expires and sig parameters of q for key (the unescaped path after
// "/media/"). It returns an EFORBIDDEN *diffute.Error when the signature does not match
// or the URL has expired at now, and an EINTERNAL error when the signer is misconfigured.
func (s *Signer) Verify(key string, q url.Values, now time.Time) error {
	if len(s.Key) < minKeySize {
		return diffute.Errorf(diffute.EINTERNAL, "media signer has no usable key")
	}
	// Exactly one of each: a second value could otherwise be read differently by a
	// proxy or cache in front of us.
	if len(q["expires"]) != 1 || len(q["sig"]) != 1 {
		return diffute.Errorf(diffute.EFORBIDDEN, "media URL is not signed")
	}
	// Only the canonical form that URL writes verifies: decimal digits without
	// a sign or leading zeros, and the signature's one base64 spelling (no
	// padding, zero trailing bits). Another spelling of the same values would be
	// a second URL for one grant, which caches and logs would tell apart.
	rawExp, rawSig := q.Get("expires"), q.Get("sig")
	exp, err := strconv.ParseInt(rawExp, 10, 64)
	if err != nil || exp < 0 || strconv.FormatInt(exp, 10) != rawExp {
		return diffute.Errorf(diffute.EFORBIDDEN, "media URL has a malformed expiry")
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(rawSig)
	if err != nil || base64.RawURLEncoding.EncodeToString(got) != rawSig || !hmac.Equal(got, s.mac(key, exp)) {
		return diffute.Errorf(diffute.EFORBIDDEN, "media URL signature does not match")
	}
	if now.Unix() >= exp {
		return diffute.Errorf(diffute.EFORBIDDEN, "media URL expired at %s", time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func (s *Signer) sign(key string, exp int64) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(key, exp))
}

// mac authenticates a versioned, newline-separated message. Keys never contain a
// newline (MediaKey does not make them, Disk rejects them), so the encoding is
// unambiguous; the version lets the format change without old URLs verifying
// under a new meaning.
func (s *Signer) mac(key string, exp int64) []byte {
	m := hmac.New(sha256.New, s.Key)
	m.Write([]byte("diffute-media-v1\n"))
	m.Write([]byte(key))
	m.Write([]byte("\n"))
	m.Write([]byte(strconv.FormatInt(exp, 10)))
	return m.Sum(nil)
}

// LoadOrCreateKey returns the signing key stored at path, creating it with KeySize
// random bytes and mode 0600 when the file does not exist. Creation is atomic: the key
// is written to a temporary file and linked into place, so concurrent callers agree on
// one key and no caller ever reads a partial one. A key file that others can read is
// refused, since whoever reads it can forge media URLs.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("media: create key directory: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("media: generate key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".media-key-*")
	if err != nil {
		return nil, fmt.Errorf("media: create key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := writeSync(tmp, key); err != nil {
		return nil, fmt.Errorf("media: write key: %w", err)
	}
	// os.CreateTemp makes the file 0600 already; Link fails if another process won the
	// race, in which case its key is the one to use.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path)
		}
		return nil, fmt.Errorf("media: install key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	return key, nil
}

func readKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("media: key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("media: key file %s has mode %v; it must be readable only by its owner (chmod 600)", path, fi.Mode().Perm())
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("media: read key: %w", err)
	}
	if len(key) < minKeySize {
		return nil, fmt.Errorf("media: key file %s holds %d bytes, need at least %d", path, len(key), minKeySize)
	}
	return key, nil
}

func writeSync(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("media: open directory for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("media: sync directory: %w", err)
	}
	return nil
}
