package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/media"
	"github.com/diffute/diffute/queue"
	"github.com/diffute/diffute/secretbox"
	"github.com/diffute/diffute/store"
)

// This file is the one place that opens what serve, worker, keys and webhooks
// share: the database (SQLite or PostgreSQL), the media store (disk or S3) and
// the keys (the secret key that seals secrets at rest, the URL signing key).
// Only this file knows which adapters back a command.

// opened is what openState opened; close it with close.
type opened struct {
	db      *store.DB
	media   closableMedia // nil when the command asked for no media
	signer  *media.Signer // disk media only
	sweeper *media.Disk   // disk media only: what retention sweeps
}

// openSpec says what a command needs opened.
type openSpec struct {
	state   *stateFlags
	secrets *tenancyFlags // the secret key flags; nil opens no secret key (diffute keys)
	// media, when set, opens the media store, its URLs under baseURL.
	media   *mediaFlags
	baseURL string
	// manifest and delivery settings of the webhook messages the store writes.
	mediaTTL, mediaRetention time.Duration
	deliveryMaxAttempts      int
}

// openState opens what spec asks for, in order: keys, media, database.
func openState(ctx context.Context, env *environment, spec openSpec) (_ *opened, err error) {
	o := &opened{}
	defer func() {
		if err != nil {
			o.close()
		}
	}()
	var (
		key []byte
		box *secretbox.Box
	)
	if spec.secrets != nil {
		if key, err = spec.secrets.secretKeyBytes(spec.state.dataDir); err != nil {
			return nil, err
		}
		if box, err = secretbox.New(key); err != nil {
			return nil, err
		}
	}
	url, sqlitePath, err := spec.state.url()
	if err != nil {
		return nil, err
	}
	if sqlitePath != "" || (spec.media != nil && spec.media.mediaURL == "") {
		if err := ensureDir(spec.state.dataDir); err != nil {
			return nil, err
		}
	}
	if spec.media != nil {
		if o.media, o.signer, err = spec.media.open(ctx, env, spec.state.dataDir, spec.baseURL); err != nil {
			return nil, err
		}
		o.sweeper, _ = o.media.(*media.Disk)
	}
	legacyFile := filepath.Join(spec.state.dataDir, legacySigningKeyFile)
	var legacy []byte
	if box != nil {
		if legacy, err = legacySigningKey(key, legacyFile, sqlitePath != ""); err != nil {
			return nil, err
		}
	}
	opts := store.Options{
		Secrets:             box,
		LegacySigningKey:    legacy,
		Manifests:           diffute.Manifests{TTL: spec.mediaTTL, Retention: spec.mediaRetention},
		DeliveryMaxAttempts: spec.deliveryMaxAttempts,
		Inference:           queue.Inference,
	}
	if o.media != nil {
		opts.Manifests.Media = o.media
	}
	if o.db, err = store.Open(ctx, url, opts); err != nil {
		if sqlitePath != "" {
			return nil, fmt.Errorf("open database %s: %w", sqlitePath, err)
		}
		// The URL itself is not repeated: it may hold a password.
		return nil, fmt.Errorf("open database (--database-url): %w", err)
	}
	if sqlitePath != "" && box != nil {
		// Open re-sealed every signing secret with the secret key, which lives
		// outside the data directory; the old key must not stay beside the data.
		if err := os.Remove(legacyFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove %s: %w", legacyFile, err)
		}
	}
	return o, nil
}

func (o *opened) close() {
	if o.media != nil {
		o.media.Close()
	}
	if o.db != nil {
		o.db.Close()
	}
}

// legacySigningKeyFile held the key of webhook signing secrets on SQLite before
// they were sealed with the secret key; Open re-seals them and it is removed.
const legacySigningKeyFile = "webhook-secrets.key"

// legacySigningKey is the key that sealed signing secrets before one box: on
// SQLite the data directory's webhook-secrets.key (when it is still there), on
// PostgreSQL derived from the secret key with a label of its own.
func legacySigningKey(secretKey []byte, file string, sqlite bool) ([]byte, error) {
	if sqlite {
		if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		k, err := media.LoadOrCreateKey(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return k, nil
	}
	mac := hmac.New(sha256.New, secretKey)
	mac.Write([]byte("diffute: webhook signing secrets"))
	return mac.Sum(nil), nil
}

// url returns the database URL the flags name for store.Open and, for SQLite,
// the file's path.
func (s *stateFlags) url() (url, sqlitePath string, err error) {
	if store.IsPostgresURL(s.databaseURL) {
		return s.databaseURL, "", nil
	}
	path, err := s.sqlitePath()
	if err != nil {
		return "", "", err
	}
	return "sqlite:" + path, path, nil
}
