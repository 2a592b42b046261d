package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/media"
	"github.com/diffute/diffute/s3"
)

// This file holds the media flags: S3 media for --media-url, disk media under the
// data directory, and a URL signing key that every API node shares.

// closableMedia is a media store that holds resources until closed.
type closableMedia interface {
	diffute.MediaStore
	Close() error
}

// mediaFlags choose where images go and how media URLs are signed.
type mediaFlags struct {
	mediaURL   string
	signingKey string
}

func (f *mediaFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.mediaURL, "media-url", "", "where images are stored: s3://BUCKET/PREFIX?endpoint=HOST:PORT&region=R&secure=false "+
		"(credentials from DIFFUTE_S3_ACCESS_KEY and DIFFUTE_S3_SECRET_KEY, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; default: DATA_DIR/media on disk)")
	fs.StringVar(&f.signingKey, "url-signing-key", "", "base64 key (16 bytes or more) signing disk media URLs; give every API node and worker the same one, "+
		"preferably as DIFFUTE_URL_SIGNING_KEY (default: DATA_DIR/url-signing.key, made on first start)")
}

// validate checks the media flags before anything is opened, so a typo fails at
// start with the flag's name.
func (f *mediaFlags) validate(env *environment) error {
	if f.mediaURL != "" {
		if _, err := s3.ParseURL(f.mediaURL, env.getenv); err != nil {
			return fmt.Errorf("--media-url: %w", err)
		}
		return nil
	}
	if f.signingKey != "" {
		_, err := f.key("")
		return err
	}
	return nil
}

// open returns the media store and, for disk media, the signer of its URLs under
// baseURL (nil for S3, whose URLs are presigned or public).
func (f *mediaFlags) open(ctx context.Context, env *environment, dataDir, baseURL string) (closableMedia, *media.Signer, error) {
	if f.mediaURL != "" {
		if f.mediaURL == "file" || strings.HasPrefix(f.mediaURL, "file:") {
			return nil, nil, errors.New("--media-url: disk media is the default; leave --media-url unset and set --data-dir")
		}
		cfg, err := s3.ParseURL(f.mediaURL, env.getenv)
		if err != nil {
			return nil, nil, fmt.Errorf("--media-url: %w", err)
		}
		store, err := s3.Open(ctx, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("--media-url: %w", err)
		}
		return store, nil, nil
	}
	key, err := f.key(dataDir)
	if err != nil {
		return nil, nil, err
	}
	signer := &media.Signer{Key: key, BaseURL: baseURL}
	disk, err := media.NewDisk(filepath.Join(dataDir, "media"), signer)
	if err != nil {
		return nil, nil, err
	}
	return disk, signer, nil
}

// key returns the URL signing key: the configured one, or the data directory's.
func (f *mediaFlags) key(dataDir string) ([]byte, error) {
	if f.signingKey == "" {
		return media.LoadOrCreateKey(filepath.Join(dataDir, "url-signing.key"))
	}
	s := strings.TrimSpace(f.signingKey)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) < 16 {
				break
			}
			return key, nil
		}
	}
	// The value is a secret: the message never repeats it.
	return nil, errors.New("--url-signing-key: want base64 of 16 random bytes or more; make one with: openssl rand -base64 32")
}
