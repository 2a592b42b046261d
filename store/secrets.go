package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
)

// Secrets at rest: one box (Options.Secrets), one key, on both databases. Job
// bearer secrets are sealed bound to their job, webhook signing secrets bound to
// their project, so that a sealed value copied to another row does not open
// there.

// ErrSecretKeyMismatch is returned by Open when the database was written with
// another secret key.
var ErrSecretKeyMismatch = errors.New("store: the secret key is not the one this database's secrets were sealed with; start with the original key (DIFFUTE_SECRET_KEY or --secret-key-file)")

// errNoSecrets is what reading or writing a secret fails with on a database
// opened without Options.Secrets (diffute keys, which handles API keys only).
var errNoSecrets = diffute.Errorf(diffute.EINTERNAL, "the database was opened without the secret key; secrets can be neither sealed nor opened")

const (
	keyCheckPlaintext = "diffute secret key check v1"
	keyCheckContext   = "diffute/secret-key-check"
)

// useSecrets checks Options.Secrets against the key the database remembers (the
// first key used with it, kept as a sealed check value), then re-seals signing
// secrets left in the plain or in the old format.
func (db *DB) useSecrets(ctx context.Context) error {
	box := db.opts.Secrets
	var sealed string
	err := db.write.QueryRowContext(ctx, `SELECT sealed FROM secret_key_check WHERE id = 1`).Scan(&sealed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		sealed, err = box.Seal(keyCheckPlaintext, keyCheckContext)
		if err != nil {
			return fmt.Errorf("store: secret key check: %w", err)
		}
		if _, err := db.write.ExecContext(ctx, `INSERT INTO secret_key_check (id, sealed) VALUES (1, ?)
			ON CONFLICT (id) DO NOTHING`, sealed); err != nil {
			return fmt.Errorf("store: secret key check: %w", err)
		}
	case err != nil:
		return fmt.Errorf("store: secret key check: %w", err)
	default:
		if got, err := box.Open(sealed, keyCheckContext); err != nil || got != keyCheckPlaintext {
			return ErrSecretKeyMismatch
		}
	}
	return db.resealSigningSecrets(ctx)
}

// legacyPrefix marks a signing secret sealed the old way: AES-256-GCM under a
// key of its own (webhook-secrets.key in the SQLite data directory, or derived
// from the secret key on PostgreSQL), bound to "org/project".
const legacyPrefix = "sealed:v1:"

// resealSigningSecrets is the migration from two schemes to one: every signing
// secret not sealed by the box (plain rows from before any encryption, and
// legacyPrefix rows) is sealed by it, in one transaction.
func (db *DB) resealSigningSecrets(ctx context.Context) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: reseal signing secrets: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id, org, project, secret FROM webhook_secrets WHERE secret NOT LIKE 'enc:v1:%'`)
	if err != nil {
		return fmt.Errorf("store: reseal signing secrets: %w", err)
	}
	type row struct {
		id                   int64
		org, project, secret string
	}
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.org, &r.project, &r.secret); err != nil {
			rows.Close()
			return fmt.Errorf("store: reseal signing secrets: %w", err)
		}
		todo = append(todo, r)
	}
	if err := closeRows(rows); err != nil {
		return fmt.Errorf("store: reseal signing secrets: %w", err)
	}
	if len(todo) == 0 {
		return nil
	}
	for _, r := range todo {
		plain := r.secret
		if b64, ok := strings.CutPrefix(r.secret, legacyPrefix); ok {
			if plain, err = openLegacy(db.opts.LegacySigningKey, r.org+"/"+r.project, b64); err != nil {
				return err
			}
		}
		sealed, err := db.sealSigningSecret(r.org, r.project, plain)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE webhook_secrets SET secret = ? WHERE id = ?`, sealed, r.id); err != nil {
			return fmt.Errorf("store: reseal signing secrets: %w", err)
		}
	}
	return tx.Commit()
}

// legacyAEAD is the cipher of legacyPrefix values.
func legacyAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, errors.New("store: webhook signing secrets sealed by an older version remain and their key was not given (webhook-secrets.key in the data directory, or the same DIFFUTE_SECRET_KEY on PostgreSQL); start once with it in place to re-seal them")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store: legacy signing key: %w", err)
	}
	return cipher.NewGCM(block)
}

// openLegacy opens a legacyPrefix value (b64 without the prefix).
func openLegacy(key []byte, aad, b64 string) (string, error) {
	aead, err := legacyAEAD(key)
	if err != nil {
		return "", err
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", errors.New("store: a stored webhook signing secret is corrupt")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(aad))
	if err != nil {
		return "", errors.New("store: a webhook signing secret does not decrypt with the legacy key (was webhook-secrets.key replaced?)")
	}
	return string(plain), nil
}

// sealLegacy seals secret the way versions before one box did; only the
// migration's tests use it, to write rows as those versions left them.
func sealLegacy(key []byte, org, project, secret string) (string, error) {
	aead, err := legacyAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	sealed := aead.Seal(nonce, nonce, []byte(secret), []byte(org+"/"+project))
	return legacyPrefix + base64.RawStdEncoding.EncodeToString(sealed), nil
}

// secretContext binds a sealed job secret to its job.
func secretContext(jobID int64) string { return "diffute/job-secret/" + strconv.FormatInt(jobID, 10) }

// signingSecretContext binds a sealed signing secret to its project.
func signingSecretContext(org, project string) string {
	return "diffute/webhook-signing-secret/" + org + "/" + project
}

func (db *DB) sealSigningSecret(org, project, secret string) (string, error) {
	if db.opts.Secrets == nil {
		return "", errNoSecrets
	}
	s, err := db.opts.Secrets.Seal(secret, signingSecretContext(org, project))
	if err != nil {
		return "", fmt.Errorf("store: seal signing secret: %w", err)
	}
	return s, nil
}

func (db *DB) openSigningSecret(org, project, stored string) (string, error) {
	if db.opts.Secrets == nil {
		return "", errNoSecrets
	}
	if !secretbox.IsSealed(stored) {
		return "", diffute.Errorf(diffute.EINTERNAL, "a webhook signing secret of %s/%s is not sealed", org, project)
	}
	plain, err := db.opts.Secrets.Open(stored, signingSecretContext(org, project))
	if err != nil {
		return "", diffute.Errorf(diffute.EINTERNAL, "a webhook signing secret of %s/%s does not open with this key", org, project)
	}
	return plain, nil
}

// openSecret decrypts job's secret in place, passing err through.
func (s *Store) openSecret(job *diffute.Job, err error) (*diffute.Job, error) {
	if err != nil {
		return job, err
	}
	if s.secrets == nil {
		return nil, errNoSecrets
	}
	plain, err := s.secrets.Open(job.Secret, secretContext(job.ID))
	if err != nil {
		return nil, fmt.Errorf("store: job %d: webhook secret: %w", job.ID, err)
	}
	job.Secret = plain
	return job, nil
}
