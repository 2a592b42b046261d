package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/diffute/diffute"
)

// DefaultEventsPollInterval is how often an events stream reads its job.
const DefaultEventsPollInterval = 250 * time.Millisecond

// DefaultMaxStreamsPerKey is how many events streams one API key may hold open
// at once when Server.MaxStreamsPerKey is 0; each polls the database.
const DefaultMaxStreamsPerKey = 8

// streamKeyRecheck is how often an open stream checks its API key again, so
// that revoking a key ends its streams within seconds.
const streamKeyRecheck = time.Second

// eventsHeartbeat is how often an idle stream sends a comment line, so that
// proxies and clients see a live connection during a long model load.
const eventsHeartbeat = 15 * time.Second

// ProgressEvent is the data of a "progress" server-sent event.
type ProgressEvent struct {
	JobID    int64             `json:"job_id"`
	Status   diffute.JobStatus `json:"status"`
	Progress float64           `json:"progress"`
	Prompts  []PromptProgress  `json:"prompts"`
}

// PromptProgress is one prompt's part of a ProgressEvent.
type PromptProgress struct {
	Name       string  `json:"name"`
	NumImages  int     `json:"num_images"`
	ImagesDone int     `json:"images_done"`
	StepsDone  int     `json:"steps_done"`
	StepsTotal int     `json:"steps_total"`
	Progress   float64 `json:"progress"`
}

// ImageEvent is the data of an "image" server-sent event: one finished image.
type ImageEvent struct {
	Prompt string `json:"prompt"`
	Index  int    `json:"index"`
	URL    string `json:"url"`
}

// jobEvents handles GET /{org}/{project}/media/inference/{job_id}/events: a
// text/event-stream of "progress" events (on every change of status or steps),
// "image" events (each finished image, once) and a last "done" event whose data is
// the job's full status, manifest included; then the stream ends.
//
// The stream polls the store at EventsPollInterval instead of subscribing to the
// worker: the worker may run in another process (scale-out), and the database is the
// one place every process writes progress to. The worker throttles its progress
// writes, so a faster poll would not show more.
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	org, project := r.PathValue("org"), r.PathValue("project")
	job, err := s.Store.Job(r.Context(), org, project, id)
	if err != nil {
		return fmt.Errorf("get job: %w", err)
	}
	key := apiKeyOf(r)
	release, err := s.streams.open(key.ID, s.maxStreamsPerKey())
	if err != nil {
		return err
	}
	defer release()
	rc := http.NewResponseController(w)
	// The server's read timeout bounds reading a request; a stream, which reads
	// nothing more, may outlive it.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would otherwise hold events back
	w.WriteHeader(http.StatusOK)

	poll := s.EventsPollInterval
	if poll <= 0 {
		poll = DefaultEventsPollInterval
	}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	lastWrite := time.Now()
	seq := 0
	send := func(event string, data any) error {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		seq++
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "id: %d\nevent: %s\ndata: %s\n\n", seq, event, b)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		lastWrite = time.Now()
		return rc.Flush()
	}
	var lastProgress []byte
	sent := map[[2]int]bool{} // (prompt, image) already sent
	keyChecked := time.Now()
	for {
		st, err := s.jobStatus(r.Context(), job)
		if err != nil {
			// Headers are out; the client sees the stream end and may reconnect.
			s.log().ErrorContext(r.Context(), "events: job status", "job_id", id, "org", org, "project", project, "err", err)
			return nil
		}
		pe := progressEvent(st)
		if b, _ := json.Marshal(pe); !bytes.Equal(b, lastProgress) {
			lastProgress = b
			if err := send("progress", pe); err != nil {
				return nil // the client went away
			}
		}
		for pi, p := range st.Prompts {
			images := p.Images
			if st.Manifest != nil {
				images = st.Manifest.Images[p.Name]
			}
			for ii, u := range images {
				if sent[[2]int{pi, ii}] {
					continue
				}
				sent[[2]int{pi, ii}] = true
				if err := send("image", ImageEvent{Prompt: p.Name, Index: ii, URL: u}); err != nil {
					return nil
				}
			}
		}
		if st.Status.Terminal() {
			_ = send("done", st) // the stream ends either way
			return nil
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-s.streams.closing():
			return nil // the server is shutting down; clients reconnect elsewhere
		case <-ticker.C:
		}
		if time.Since(keyChecked) >= streamKeyRecheck {
			// A revoked (or narrowed) key ends its streams.
			if _, err := s.authorize(r, org, project); err != nil {
				return nil
			}
			keyChecked = time.Now()
		}
		if time.Since(lastWrite) >= eventsHeartbeat {
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return nil
			}
			lastWrite = time.Now()
			rc.Flush()
		}
		job, err = s.Store.Job(r.Context(), org, project, id)
		if err != nil {
			if r.Context().Err() == nil {
				s.log().ErrorContext(r.Context(), "events: reload job", "job_id", id, "org", org, "project", project, "err", err)
			}
			return nil
		}
	}
}

// CloseStreams ends every open events stream. http.Server.Shutdown waits for
// active connections, and a stream stays active until its job ends, so serve
// registers this with RegisterOnShutdown.
func (s *Server) CloseStreams() { s.streams.close() }

// streamCloser ends streams on shutdown and counts the open ones per API key.
// The zero value is ready.
type streamCloser struct {
	once, closeOnce sync.Once
	ch              chan struct{}

	mu     sync.Mutex
	perKey map[int64]int
}

func (c *streamCloser) closing() chan struct{} {
	c.once.Do(func() { c.ch = make(chan struct{}) })
	return c.ch
}

func (c *streamCloser) close() {
	ch := c.closing()
	c.closeOnce.Do(func() { close(ch) })
}

// open counts a new stream of key, or refuses it (429) when key has limit open.
func (c *streamCloser) open(key int64, limit int) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perKey == nil {
		c.perKey = map[int64]int{}
	}
	if c.perKey[key] >= limit {
		return nil, &retryAfterError{after: 5 * time.Second, err: diffute.Errorf(diffute.ERATELIMIT,
			"this API key has %d events streams open, its limit; close one first", limit)}
	}
	c.perKey[key]++
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.perKey[key]--; c.perKey[key] <= 0 {
			delete(c.perKey, key)
		}
	}, nil
}

func (s *Server) maxStreamsPerKey() int {
	if s.MaxStreamsPerKey <= 0 {
		return DefaultMaxStreamsPerKey
	}
	return s.MaxStreamsPerKey
}

func progressEvent(st *JobStatus) ProgressEvent {
	pe := ProgressEvent{JobID: st.JobID, Status: st.Status, Progress: st.Progress, Prompts: make([]PromptProgress, len(st.Prompts))}
	for i, p := range st.Prompts {
		pe.Prompts[i] = PromptProgress{Name: p.Name, NumImages: p.NumImages, ImagesDone: p.ImagesDone,
			StepsDone: p.StepsDone, StepsTotal: p.StepsTotal, Progress: p.Progress}
	}
	if st.Status == diffute.StatusSucceeded {
		pe.Progress = 1
	}
	return pe
}
