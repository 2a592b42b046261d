package diffute

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"time"
)

// Manifests shapes a job's manifest: the webhook payload of each event and the
// manifest in the status view. It is the one place that decides what a manifest
// holds (URLs, expires_at, which prompts an event lists), so the worker, the
// store's own transactions (started, prompt.completed, a cancelled job's
// message), the status view and redelivery all send the same thing.
type Manifests struct {
	// Media gives the image URLs; nil (an API-only process without media)
	// lists no URLs, every prompt an empty list.
	Media MediaStore
	// TTL is how long each URL stays valid; 0 means DefaultMediaTTL.
	TTL time.Duration
	// Retention is how long images are kept after the job ends (expires_at);
	// 0 means DefaultMediaRetention.
	Retention time.Duration
}

// For builds the manifest of job for event (EventCompleted, EventStarted,
// EventPromptCompleted; "" for the status view, which is the completed manifest
// without an event name). prompt names the prompt of EventPromptCompleted. A
// failed job's manifest still lists the images of the prompts that finished.
func (ms Manifests) For(ctx context.Context, job *Job, event, prompt string) (*Manifest, error) {
	m := &Manifest{
		Name:   job.Name,
		Images: make(map[string][]string, len(job.Prompts)),
		JobID:  job.ID,
		Status: job.Status,
		Error:  job.Error,
		Event:  event,
	}
	if !job.FinishedAt.IsZero() {
		exp := job.FinishedAt.Add(cmp.Or(ms.Retention, DefaultMediaRetention)).UTC()
		m.ExpiresAt = &exp
	}
	ttl := ms.TTL
	if ttl <= 0 {
		ttl = DefaultMediaTTL
	}
	for _, p := range job.Prompts {
		switch {
		case event == EventStarted:
			continue // a started message lists no images
		case event == EventPromptCompleted && p.Name != prompt:
			continue
		}
		urls := make([]string, 0, len(p.Images))
		if ms.Media != nil {
			for _, key := range p.Images {
				u, err := ms.Media.URL(ctx, key, ttl)
				if err != nil {
					return nil, err
				}
				urls = append(urls, u)
			}
		}
		m.Images[p.Name] = urls
		if p.Recipe != nil {
			if m.Recipes == nil {
				m.Recipes = make(map[string]*Recipe, len(job.Prompts))
			}
			m.Recipes[p.Name] = p.Recipe
		}
	}
	if event == EventPromptCompleted {
		m.Prompt = prompt
		if _, ok := m.Images[prompt]; !ok {
			m.Images[prompt] = []string{}
		}
	}
	return m, nil
}

// NewManifest builds the completed manifest of job with URLs valid for ttl; it
// is Manifests{Media: media, TTL: ttl}.For(ctx, job, "", "").
func NewManifest(ctx context.Context, job *Job, media MediaStore, ttl time.Duration) (*Manifest, error) {
	return Manifests{Media: media, TTL: ttl}.For(ctx, job, "", "")
}

// DefaultMediaTTL is how long a media URL stays valid unless configured otherwise.
const DefaultMediaTTL = 7 * 24 * time.Hour

// Body returns m as the webhook's JSON body. URLs keep their '&' (no HTML escaping).
func (m *Manifest) Body() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
