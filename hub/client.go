package hub

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultEndpoint is the Hub used when HF_ENDPOINT is not set.
const DefaultEndpoint = "https://huggingface.co"

// Sentinel errors, matched with errors.Is.
var (
	// ErrGated means the Hub refused access (401/403): the repository is gated
	// or private and the token is missing or has not been granted access.
	ErrGated = errors.New("hub: access denied (gated or private repository)")
	// ErrNotFound means the repository, revision or file does not exist (404).
	ErrNotFound = errors.New("hub: not found")
	// ErrOffline means the client is offline and the model is not in the cache.
	ErrOffline = errors.New("hub: offline and not cached")
	// ErrNotCached means the cache holds no complete snapshot for the revision.
	ErrNotCached = errors.New("hub: not in cache")
	// ErrNoONNX means the revision does not hold a diffusers ONNX export.
	ErrNoONNX = errors.New("hub: revision has no ONNX pipeline layout")
	// ErrNoDiffusers means the revision does not hold a pipeline in the
	// diffusers layout with safetensors weights.
	ErrNoDiffusers = errors.New("hub: revision has no diffusers safetensors layout")
	// ErrCorrupt means downloaded content does not match the Hub's checksum.
	ErrCorrupt = errors.New("hub: downloaded content does not match its checksum")
)

// Client downloads Stable Diffusion pipelines (diffusers safetensors or ONNX
// layout) from a Hugging Face Hub into a cache shared with Python's
// huggingface_hub. The zero value is not usable: set CacheDir at
// least, or build one with FromEnv. A Client is safe for concurrent use.
type Client struct {
	// Endpoint is the Hub base URL, without a trailing slash. Empty means
	// DefaultEndpoint.
	Endpoint string
	// Token is sent as "Authorization: Bearer" to the endpoint's host only.
	Token string
	// CacheDir is the hub cache root (the directory holding models--*).
	CacheDir string
	// Offline forbids all network access: Pull resolves from the cache only.
	Offline bool
	// HTTP is the client used for requests; nil means http.DefaultClient. Its
	// CheckRedirect is not used: the client follows redirects itself so that
	// the token never leaves the endpoint's host.
	HTTP *http.Client
	// Progress, when not nil, is called as file content arrives: file is the
	// path inside the repository, total is -1 when unknown. Calls for one Pull
	// come from one goroutine.
	Progress func(file string, done, total int64)
}

// FromEnv builds a Client the way huggingface_hub reads its environment:
// cache in HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
// else ~/.cache/huggingface/hub; endpoint HF_ENDPOINT; token HF_TOKEN (or the
// legacy HUGGING_FACE_HUB_TOKEN, or the file written by `huggingface-cli login`
// at HF_TOKEN_PATH or $HF_HOME/token); offline when HF_HUB_OFFLINE (or
// TRANSFORMERS_OFFLINE) is 1, ON, YES or TRUE. getenv is usually os.Getenv.
func FromEnv(getenv func(string) string) (*Client, error) {
	// No overall timeout: a model file takes as long as it takes; a server
	// that never answers is cut off by the header timeout, a stalled body by
	// the caller's context.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute
	c := &Client{HTTP: &http.Client{Transport: tr}}

	c.Endpoint = strings.TrimRight(strings.TrimSpace(getenv("HF_ENDPOINT")), "/")
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hub: HF_ENDPOINT %q is not an http(s) URL", c.Endpoint)
	}

	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("hub: locating the cache: %w", err)
		}
		home = h
	}
	expand := func(p string) string {
		if p == "~" {
			return home
		}
		if strings.HasPrefix(p, "~/") {
			return filepath.Join(home, p[2:])
		}
		return p
	}
	hfHome := expand(getenv("HF_HOME"))
	if hfHome == "" {
		xdg := expand(getenv("XDG_CACHE_HOME"))
		if xdg == "" {
			xdg = filepath.Join(home, ".cache")
		}
		hfHome = filepath.Join(xdg, "huggingface")
	}
	c.CacheDir = expand(getenv("HF_HUB_CACHE"))
	if c.CacheDir == "" {
		c.CacheDir = expand(getenv("HUGGINGFACE_HUB_CACHE"))
	}
	if c.CacheDir == "" {
		c.CacheDir = filepath.Join(hfHome, "hub")
	}

	c.Token = strings.TrimSpace(getenv("HF_TOKEN"))
	if c.Token == "" {
		c.Token = strings.TrimSpace(getenv("HUGGING_FACE_HUB_TOKEN"))
	}
	if c.Token == "" {
		tokenPath := expand(getenv("HF_TOKEN_PATH"))
		if tokenPath == "" {
			tokenPath = filepath.Join(hfHome, "token")
		}
		// A missing token file is normal (never logged in); other read errors
		// are not, because a silently absent token turns into a confusing 401.
		b, err := os.ReadFile(tokenPath)
		switch {
		case err == nil:
			c.Token = strings.TrimSpace(string(b))
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("hub: reading token file: %w", err)
		}
	}

	c.Offline = envTrue(getenv("HF_HUB_OFFLINE")) || envTrue(getenv("TRANSFORMERS_OFFLINE"))
	return c, nil
}

func envTrue(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "1", "ON", "YES", "TRUE":
		return true
	}
	return false
}

// ResponseError is a failed Hub request. It matches ErrGated for 401 and 403
// and ErrNotFound for 404 with errors.Is.
type ResponseError struct {
	Method, URL string
	StatusCode  int
	// Code and Message come from the Hub's X-Error-Code and X-Error-Message
	// headers when present (for example "GatedRepo", "RepositoryNotFound").
	Code, Message string
	// Repo is the repository asked for, used in the advice the error gives.
	Repo     string
	endpoint string
}

// Error implements error, with advice for the failures a user can fix.
func (e *ResponseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hub: %s %s: %s", e.Method, e.URL, http.StatusText(e.StatusCode))
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, " (%d", e.StatusCode)
		if e.Code != "" {
			fmt.Fprintf(&b, " %s", e.Code)
		}
		b.WriteString(")")
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	switch {
	case e.gated():
		fmt.Fprintf(&b, "; %s is gated or private: set HF_TOKEN to a token of an account that has accepted its licence at %s/%s", e.Repo, e.endpoint, e.Repo)
	case e.notFound():
		fmt.Fprintf(&b, "; check the repository name %q and the revision (a private repository also needs HF_TOKEN)", e.Repo)
	}
	return b.String()
}

func (e *ResponseError) gated() bool {
	if e.Code == "RepositoryNotFound" || e.Code == "RevisionNotFound" || e.Code == "EntryNotFound" {
		// The Hub answers 401 for repositories it will not admit exist.
		return false
	}
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden || e.Code == "GatedRepo"
}

func (e *ResponseError) notFound() bool {
	if e.gated() {
		return false
	}
	return e.StatusCode == http.StatusNotFound || strings.HasSuffix(e.Code, "NotFound")
}

// Is maps the status to the package's sentinels.
func (e *ResponseError) Is(target error) bool {
	switch target {
	case ErrGated:
		return e.gated()
	case ErrNotFound:
		return e.notFound()
	}
	return false
}

func (c *Client) endpoint() string {
	if c.Endpoint == "" {
		return DefaultEndpoint
	}
	return strings.TrimRight(c.Endpoint, "/")
}

func (c *Client) httpClient() *http.Client {
	h := c.HTTP
	if h == nil {
		h = http.DefaultClient
	}
	// Copy so that redirects can be handled here without changing the
	// caller's client: the standard client forwards Authorization to another
	// port of the same host name, which would leak the token to a CDN there.
	nc := *h
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &nc
}
