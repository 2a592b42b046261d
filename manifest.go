package diffute

import (
	"bytes"
	"context"
	"encoding/json"
	"time"
)

// NewManifest builds the manifest of job: for each prompt, the URLs of its finished
// images in order, each valid for ttl. A failed job's manifest still lists the images
// of the prompts that finished.
func NewManifest(ctx context.Context, job *Job, media MediaStore, ttl time.Duration) (*Manifest, error) {
	m := &Manifest{
		Name:   job.Name,
		Images: make(map[string][]string, len(job.Prompts)),
		JobID:  job.ID,
		Status: job.Status,
		Error:  job.Error,
	}
	for _, p := range job.Prompts {
		urls := make([]string, 0, len(p.Images))
		for _, key := range p.Images {
			u, err := media.URL(ctx, key, ttl)
			if err != nil {
				return nil, err
			}
			urls = append(urls, u)
		}
		m.Images[p.Name] = urls
	}
	return m, nil
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
