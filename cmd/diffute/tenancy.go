package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
	"github.com/diffute/diffute/secretbox"
)

// tenancyFlags are serve's flags for limits, retention and the secret key.
type tenancyFlags struct {
	rateLimit         float64
	rateBurst         int
	maxActiveJobs     int
	maxImagesPerDay   int
	orgLimits         string
	mediaRetention    time.Duration
	retentionInterval time.Duration
	secretKey         string
	secretKeyFile     string
}

func (t *tenancyFlags) register(fs *flag.FlagSet, env *environment) {
	fs.Float64Var(&t.rateLimit, "rate-limit", 50, "requests per second per API key, on average (0: no limit)")
	fs.IntVar(&t.rateBurst, "rate-burst", 500, "requests per API key allowed at once above --rate-limit")
	fs.IntVar(&t.maxActiveJobs, "max-active-jobs", 100, "queued + running jobs per project (0: no limit)")
	fs.IntVar(&t.maxImagesPerDay, "max-images-per-day", 10000, "images requested per project per UTC day (0: no limit)")
	fs.StringVar(&t.orgLimits, "org-limits", "", `JSON file of per-organization overrides, e.g. {"acme": {"max_active_jobs": 5, "max_images_per_day": 200, "rate_limit": 2, "rate_burst": 20}}`)
	fs.DurationVar(&t.mediaRetention, "media-retention", diffute.DefaultMediaRetention, "how long images are kept after their job ends")
	fs.DurationVar(&t.retentionInterval, "retention-interval", time.Hour, "how often expired images are deleted")
	fs.StringVar(&t.secretKey, "secret-key", "", "key that encrypts webhook secrets at rest: 32 bytes as base64 or hex (openssl rand -base64 32); prefer DIFFUTE_SECRET_KEY to the flag")
	fs.StringVar(&t.secretKeyFile, "secret-key-file", defaultSecretKeyFile(env.getenv), "file holding the secret key, created if absent; used when --secret-key is not set; must be outside --data-dir")
}

// defaultSecretKeyFile is $XDG_CONFIG_HOME/diffute/secret.key, else
// ~/.config/diffute/secret.key: configuration, not data, so that a backup or copy
// of the data directory does not carry the key that opens its secrets.
func defaultSecretKeyFile(getenv func(string) string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "diffute", "secret.key")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".config", "diffute", "secret.key")
	}
	return ""
}

func (t *tenancyFlags) validate() error {
	switch {
	case t.rateLimit < 0 || t.rateBurst < 0 || t.maxActiveJobs < 0 || t.maxImagesPerDay < 0:
		return errors.New("serve: --rate-limit, --rate-burst, --max-active-jobs and --max-images-per-day must be 0 or more")
	case t.mediaRetention <= 0:
		return errors.New("serve: --media-retention must be positive, e.g. 168h")
	case t.retentionInterval <= 0:
		return errors.New("serve: --retention-interval must be positive, e.g. 1h")
	}
	return nil
}

// secretBox returns the box for webhook secrets: from --secret-key, else from the
// key file (created on first start). The file may not lie inside the data
// directory: the key must not travel with the data it protects.
func (t *tenancyFlags) secretBox(dataDir string) (*secretbox.Box, error) {
	key, err := t.secretKeyBytes(dataDir)
	if err != nil {
		return nil, err
	}
	return secretbox.New(key)
}

// secretKeyBytes is the secret key secretBox uses: from --secret-key, else from
// the key file (created on first start), which may not lie in the data directory.
func (t *tenancyFlags) secretKeyBytes(dataDir string) ([]byte, error) {
	var key []byte
	if t.secretKey != "" {
		k, err := secretbox.ParseKey(t.secretKey)
		if err != nil {
			return nil, fmt.Errorf("serve: --secret-key (DIFFUTE_SECRET_KEY): %w", err)
		}
		key = k
	} else {
		if t.secretKeyFile == "" {
			return nil, errors.New("serve: no secret key: set DIFFUTE_SECRET_KEY (openssl rand -base64 32) or --secret-key-file")
		}
		if inside(dataDir, t.secretKeyFile) {
			return nil, fmt.Errorf("serve: --secret-key-file %s is inside --data-dir %s; keep the key elsewhere (or set DIFFUTE_SECRET_KEY) so that a copy of the data does not carry it",
				t.secretKeyFile, dataDir)
		}
		k, err := secretbox.LoadOrCreateKeyFile(t.secretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("serve: --secret-key-file: %w (set DIFFUTE_SECRET_KEY, or --secret-key-file to a writable path outside --data-dir)", err)
		}
		key = k
	}
	return key, nil
}

// inside reports whether path lies in dir (or is dir).
func inside(dir, path string) bool {
	d, err1 := filepath.Abs(dir)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// orgOverride is one organization's entry in the --org-limits file; absent
// fields keep the flags' values.
type orgOverride struct {
	MaxActiveJobs   *int     `json:"max_active_jobs"`
	MaxImagesPerDay *int     `json:"max_images_per_day"`
	RateLimit       *float64 `json:"rate_limit"`
	RateBurst       *int     `json:"rate_burst"`
}

// policy returns the per-organization policy function for the API: the flags'
// defaults with the --org-limits file's overrides.
func (t *tenancyFlags) policy() (func(org string) httpapi.TenantPolicy, error) {
	def := httpapi.TenantPolicy{
		RateLimit: httpapi.RateLimit{Rate: t.rateLimit, Burst: t.rateBurst},
		Quota:     diffute.Quota{MaxActiveJobs: t.maxActiveJobs, MaxImagesPerDay: t.maxImagesPerDay},
	}
	overrides := map[string]httpapi.TenantPolicy{}
	if t.orgLimits != "" {
		b, err := os.ReadFile(t.orgLimits)
		if err != nil {
			return nil, fmt.Errorf("serve: --org-limits: %w", err)
		}
		var file map[string]orgOverride
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&file); err != nil {
			return nil, fmt.Errorf(`serve: --org-limits %s: %w; want {"ORG": {"max_active_jobs": N, "max_images_per_day": N, "rate_limit": R, "rate_burst": N}}`, t.orgLimits, err)
		}
		for org, o := range file {
			p := def
			set := func(dst *int, v *int, name string) error {
				if v != nil {
					if *v < 0 {
						return fmt.Errorf("serve: --org-limits: %s.%s must be 0 or more", org, name)
					}
					*dst = *v
				}
				return nil
			}
			if err := errors.Join(set(&p.Quota.MaxActiveJobs, o.MaxActiveJobs, "max_active_jobs"),
				set(&p.Quota.MaxImagesPerDay, o.MaxImagesPerDay, "max_images_per_day"),
				set(&p.RateLimit.Burst, o.RateBurst, "rate_burst")); err != nil {
				return nil, err
			}
			if o.RateLimit != nil {
				if *o.RateLimit < 0 {
					return nil, fmt.Errorf("serve: --org-limits: %s.rate_limit must be 0 or more", org)
				}
				p.RateLimit.Rate = *o.RateLimit
			}
			overrides[org] = p
		}
	}
	return func(org string) httpapi.TenantPolicy {
		if p, ok := overrides[org]; ok {
			return p
		}
		return def
	}, nil
}

// demoSecretKey returns a random key for a server whose data is temporary.
func demoSecretKey() string {
	k := make([]byte, secretbox.KeySize)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}
