package diffute

import (
	"context"
	"io"
	"time"
)

// Store keeps jobs. Implementations write a job and its queue entry in one
// transaction. Lookups scoped to another organization or project return ENOTFOUND,
// so that existence never leaks across tenants.
type Store interface {
	// CreateJob stores job (ID, Status and CreatedAt set by the caller) and enqueues it.
	CreateJob(ctx context.Context, job *Job) error
	// Job returns the job with its prompts and progress.
	Job(ctx context.Context, org, project string, id int64) (*Job, error)
	// CancelJob cancels a queued or running job; ECONFLICT when it is already terminal.
	CancelJob(ctx context.Context, org, project string, id int64) (*Job, error)
	// ListJobs returns up to limit (at most 100) jobs of org/project, newest
	// first, continuing after job before when it is non-zero, and the cursor of
	// the next page (0 when none follows).
	ListJobs(ctx context.Context, org, project string, limit int, before int64) (jobs []*Job, next int64, err error)
	// Deliveries lists the webhook delivery attempts of a job of org/project,
	// oldest first; none for a job of another tenant.
	Deliveries(ctx context.Context, org, project string, jobID int64) ([]DeliveryAttempt, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
}

// DeliveryAttempt is one attempt to deliver a webhook message.
type DeliveryAttempt struct {
	DeliveryID int64         `json:"delivery_id"`
	MessageID  string        `json:"webhook_id"`
	Event      string        `json:"event"`
	Attempt    int           `json:"attempt"`
	At         time.Time     `json:"at"`
	StatusCode int           `json:"status_code,omitempty"`
	Latency    time.Duration `json:"-"`
	Error      string        `json:"error,omitempty"`
	Excerpt    string        `json:"response_excerpt,omitempty"`
}

// APIKey is a stored API key. Only a hash of the secret part is stored.
type APIKey struct {
	ID        int64
	Org       string
	Project   string // "" for a key valid for every project of Org
	Name      string
	CreatedAt time.Time
	RevokedAt time.Time // zero while valid
}

// Allows reports whether the key may act on org/project.
func (k *APIKey) Allows(org, project string) bool {
	return k.RevokedAt.IsZero() && k.Org == org && (k.Project == "" || k.Project == project)
}

// KeyStore keeps API keys.
type KeyStore interface {
	CreateAPIKey(ctx context.Context, key *APIKey, hash []byte) error
	// APIKeyByHash returns the key whose hash matches, EUNAUTHORIZED when none or revoked.
	APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	ListAPIKeys(ctx context.Context, org string) ([]*APIKey, error)
	RevokeAPIKey(ctx context.Context, id int64) error
}

// MediaInfo describes a stored object.
type MediaInfo struct {
	Size        int64
	ContentType string
	ModTime     time.Time
	ETag        string
}

// MediaStore keeps generated images under keys made by MediaKey.
type MediaStore interface {
	// Put stores data under key atomically.
	Put(ctx context.Context, key string, data []byte, contentType string) error
	// Open returns the object for serving; ENOTFOUND when absent.
	Open(ctx context.Context, key string) (io.ReadSeekCloser, MediaInfo, error)
	// URL returns a URL that opens the object without an API key until expiry.
	URL(ctx context.Context, key string, ttl time.Duration) (string, error)
	// Delete removes the object; deleting an absent object is not an error.
	Delete(ctx context.Context, key string) error
}
