package secretbox

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, KeySize)
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "4f986e48-0129-480e-996a-728ea57c020c"
	sealed, err := b.Seal(secret, "job:1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, secret) || !IsSealed(sealed) {
		t.Fatalf("sealed = %q", sealed)
	}
	again, _ := b.Seal(secret, "job:1")
	if again == sealed {
		t.Error("two seals of one secret are equal: the nonce is not random")
	}
	if got, err := b.Open(sealed, "job:1"); err != nil || got != secret {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := b.Open(sealed, "job:2"); !errors.Is(err, ErrOpen) {
		t.Errorf("Open in another context: %v, want ErrOpen", err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(sealed, "job:1"); !errors.Is(err, ErrOpen) {
		t.Errorf("Open with another key: %v, want ErrOpen", err)
	}
	if got, err := b.Open("legacy-plain", "job:1"); err != nil || got != "legacy-plain" {
		t.Errorf("Open(plaintext) = %q, %v", got, err)
	}
	if s, _ := b.Seal("", "x"); s != "" {
		t.Errorf("Seal(\"\") = %q", s)
	}
	if _, err := b.Open(sealed[:len(sealed)-3], "job:1"); !errors.Is(err, ErrOpen) {
		t.Errorf("Open(truncated): %v", err)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		strings.Repeat("ab", 32),
		"q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=",
		"q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80",
	} {
		if k, err := ParseKey(s); err != nil || len(k) != KeySize {
			t.Errorf("ParseKey(%q) = %d bytes, %v", s, len(k), err)
		}
	}
	for _, s := range []string{"", "short", strings.Repeat("ab", 16), strings.Repeat("zz", 32)} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "conf", "secret.key")
	k1, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load: %v, equal=%v", err, bytes.Equal(k1, k2))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	if err := os.WriteFile(path, []byte("nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Error("a damaged key file was accepted")
	}
}
