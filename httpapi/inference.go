package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/diffute/diffute"
)

// acceptedResponse is the body of 202 Accepted.
type acceptedResponse struct {
	JobID  int64             `json:"job_id"`
	Status diffute.JobStatus `json:"status"`
}

// createInference handles PUT /{org}/{project}/media/inference.
func (s *Server) createInference(w http.ResponseWriter, r *http.Request) error {
	limits := s.limits()
	wait, waiting, err := preferWait(r.Header.Values("Prefer"))
	if err != nil {
		return err
	}
	cancelIn, cancels, err := cancelAfter(r.Header.Values("Cancel-After"))
	if err != nil {
		return err
	}
	body, err := readJSONBody(w, r, limits.MaxBodyBytes)
	if err != nil {
		return err
	}
	req, err := decodeInferenceRequest(body)
	if err != nil {
		return err
	}
	if err := s.applyDefaults(r.Context(), req, body); err != nil {
		return err
	}
	if err := req.Validate(limits, s.Models); err != nil {
		return err
	}
	org, project := r.PathValue("org"), r.PathValue("project")
	job := newJob(org, project, req, time.Now().UTC())
	id, status, replayed, err := s.submit(r, job, req)
	if err != nil {
		return err
	}
	if replayed {
		// The original job, not a new one: the client retried a request we took.
		w.Header().Set("Idempotent-Replayed", "true")
	}
	if cancels && !replayed {
		s.cancelLater(org, project, id, cancelIn)
	}
	w.Header().Set("Location", jobPath(org, project, id))
	if waiting {
		// Replicate's semantics: the finished job when it ends in time, else
		// 202 as without the preference.
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
		job, ended, err := s.waitEnded(r.Context(), org, project, id, wait)
		if err != nil {
			return err
		}
		if ended {
			return s.writeStatus(w, r, http.StatusOK, job)
		}
		if job != nil {
			status = job.Status
		}
	}
	s.writeJSON(w, r, http.StatusAccepted, acceptedResponse{JobID: id, Status: status})
	return nil
}

// newJob turns a validated request into a queued job: a fresh random ID, every seed
// resolved (so that the stored job says exactly how to reproduce each image), and the
// default output format made explicit.
func newJob(org, project string, req *diffute.InferenceRequest, now time.Time) *diffute.Job {
	format := req.OutputFormat
	if format == "" {
		format = diffute.FormatPNG
	}
	job := &diffute.Job{
		ID:           diffute.NewJobID(),
		Org:          org,
		Project:      project,
		Name:         req.Name,
		Model:        req.PretrainedModelName,
		Webhook:      req.Webhook,
		Secret:       req.Secret,
		OutputFormat: format,
		Status:       diffute.StatusQueued,
		Prompts:      make([]diffute.JobPrompt, len(req.Prompts)),
		CreatedAt:    now,
	}
	job.WebhookEvents = req.WebhookEvents
	for i, p := range req.Prompts {
		if p.Seed == nil {
			seed := diffute.NewSeed()
			p.Seed = &seed
		}
		job.Prompts[i] = diffute.JobPrompt{PromptRequest: p, Index: i}
	}
	return job
}

func jobPath(org, project string, id int64) string {
	return "/" + org + "/" + project + "/media/inference/" + strconv.FormatInt(id, 10)
}

// getInference handles GET /{org}/{project}/media/inference/{job_id}.
func (s *Server) getInference(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	job, err := s.Store.Job(r.Context(), r.PathValue("org"), r.PathValue("project"), id)
	if err != nil {
		return fmt.Errorf("get job: %w", err)
	}
	return s.writeStatus(w, r, http.StatusOK, job)
}

// cancelInference handles DELETE /{org}/{project}/media/inference/{job_id}.
func (s *Server) cancelInference(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	job, err := s.Store.CancelJob(r.Context(), r.PathValue("org"), r.PathValue("project"), id)
	if err != nil {
		return fmt.Errorf("cancel job: %w", err)
	}
	s.JobEnds.Ended(id)
	return s.writeStatus(w, r, http.StatusOK, job)
}

// deliveryView is a delivery attempt as the API shows it.
type deliveryView struct {
	diffute.DeliveryAttempt
	LatencyMS float64 `json:"latency_ms"`
}

func deliveryViews(attempts []diffute.DeliveryAttempt) []deliveryView {
	views := make([]deliveryView, len(attempts))
	for i, a := range attempts {
		views[i] = deliveryView{DeliveryAttempt: a, LatencyMS: float64(a.Latency) / float64(time.Millisecond)}
	}
	return views
}

// listDeliveries handles GET /{org}/{project}/media/inference/{job_id}/deliveries.
func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	org, project := r.PathValue("org"), r.PathValue("project")
	// A job of another tenant is 404, not an empty log.
	if _, err := s.Store.Job(r.Context(), org, project, id); err != nil {
		return fmt.Errorf("get job: %w", err)
	}
	// Messages include those not attempted yet (pending), which have no
	// attempt to show in deliveries. They are read first: a message's state
	// follows its latest attempt (written together), so attempts read after
	// include every attempt the states reflect.
	msgs, err := s.Webhooks.WebhookMessages(r.Context(), org, project, id)
	if err != nil {
		return fmt.Errorf("list webhook messages: %w", err)
	}
	attempts, err := s.Store.Deliveries(r.Context(), org, project, id)
	if err != nil {
		return fmt.Errorf("list deliveries: %w", err)
	}
	if msgs == nil {
		msgs = []diffute.WebhookMessage{}
	}
	out := map[string]any{"job_id": id, "deliveries": deliveryViews(attempts), "messages": msgs}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

// JobStatus is the body of GET, and DELETE, /{org}/{project}/media/inference/{job_id}.
// It never contains the webhook secret.
type JobStatus struct {
	JobID      int64             `json:"job_id"`
	Name       string            `json:"name"`
	Model      string            `json:"model"`
	Status     diffute.JobStatus `json:"status"`
	Progress   float64           `json:"progress"` // finished images / requested images
	CreatedAt  time.Time         `json:"created_at"`
	StartedAt  *time.Time        `json:"started_at"`
	FinishedAt *time.Time        `json:"finished_at"`
	Error      string            `json:"error,omitempty"`
	Prompts    []PromptStatus    `json:"prompts"`
	Manifest   *diffute.Manifest `json:"manifest,omitempty"` // once terminal
	Webhook    WebhookStatus     `json:"webhook"`
	// Usage is the work metered for this job so far.
	Usage UsageFigures `json:"usage"`
	// ExpiresAt is when retention deletes the job's images (once it has ended).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// MediaDeletedAt is when they were deleted; their URLs answer 410 since.
	MediaDeletedAt *time.Time `json:"media_deleted_at,omitempty"`
}

// PromptStatus is one prompt of a JobStatus, with its resolved parameters.
type PromptStatus struct {
	Name          string   `json:"name"`
	Prompt        string   `json:"prompt"`
	Style         string   `json:"style,omitempty"`
	NumImages     int      `json:"num_images"`
	ImagesDone    int      `json:"images_done"`
	StepsDone     int      `json:"steps_done"`  // of the images now being denoised
	StepsTotal    int      `json:"steps_total"` // 0 before they start
	Width         int      `json:"width"`
	Height        int      `json:"height"`
	Seed          *int64   `json:"seed"`
	Steps         int      `json:"steps,omitempty"`
	GuidanceScale *float64 `json:"guidance_scale,omitempty"`
	Scheduler     string   `json:"scheduler,omitempty"`
	// NegativePrompt is absent when none was sent, "" when "" was (they differ
	// on SDXL); RNG is absent when the request left it to the deployment.
	NegativePrompt *string `json:"negative_prompt,omitempty"`
	RNG            string  `json:"rng,omitempty"`
	// Recipe is what the engine resolved the prompt to, once it has started:
	// the model's source, rng, seeds, scheduler and spacing, steps, guidance.
	Recipe   *diffute.Recipe `json:"recipe,omitempty"`
	Progress float64         `json:"progress"`
	Images   []string        `json:"images,omitempty"` // URLs of finished images while the job runs
}

// WebhookStatus is the delivery state of a job's webhook. The URL is the one the
// client sent; the secret is never shown.
type WebhookStatus struct {
	URL            string                `json:"url,omitempty"`
	State          diffute.DeliveryState `json:"state"`
	Attempts       int                   `json:"attempts"`
	LastStatusCode int                   `json:"last_status_code,omitempty"`
	// Log is the delivery log, as at …/deliveries; set when the server has a
	// WebhookStore. A pointer keeps WebhookStatus comparable.
	Log *DeliveryLog `json:"log,omitempty"`
}

// DeliveryLog lists a job's webhook messages (pending ones included) and every
// attempt to deliver them.
type DeliveryLog struct {
	Messages   []diffute.WebhookMessage `json:"messages"`
	Deliveries []deliveryView           `json:"deliveries"`
}

func (s *Server) writeStatus(w http.ResponseWriter, r *http.Request, status int, job *diffute.Job) error {
	v, err := s.jobStatus(r.Context(), job)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, status, v)
	return nil
}

func (s *Server) jobStatus(ctx context.Context, job *diffute.Job) (*JobStatus, error) {
	v := &JobStatus{
		JobID:          job.ID,
		Name:           job.Name,
		Model:          job.Model,
		Status:         job.Status,
		CreatedAt:      job.CreatedAt.UTC(),
		StartedAt:      optionalTime(job.StartedAt),
		FinishedAt:     optionalTime(job.FinishedAt),
		Error:          job.Error,
		Prompts:        make([]PromptStatus, len(job.Prompts)),
		Usage:          usageFigures(job.Usage),
		ExpiresAt:      mediaExpiry(job, s.mediaRetention()),
		MediaDeletedAt: optionalTime(job.MediaDeletedAt),
	}
	total, done := 0, 0
	for i, p := range job.Prompts {
		ps := PromptStatus{
			Name:           p.Name,
			Prompt:         p.Prompt,
			Style:          p.Style,
			NumImages:      p.NumImages,
			ImagesDone:     p.ImagesDone,
			StepsDone:      p.StepsDone,
			StepsTotal:     p.StepsTotal,
			Width:          p.Width,
			Height:         p.Height,
			Seed:           p.Seed,
			Steps:          p.Steps,
			GuidanceScale:  p.GuidanceScale,
			Scheduler:      p.Scheduler,
			NegativePrompt: p.NegativePrompt,
			RNG:            p.RNG,
			Recipe:         p.Recipe,
			Progress:       promptProgress(p),
		}
		if !job.Status.Terminal() && len(p.Images) > 0 {
			for _, key := range p.Images {
				u, err := s.Media.URL(ctx, key, s.mediaTTL())
				if err != nil {
					return nil, &jobError{jobID: job.ID, err: fmt.Errorf("media URL: %w", err)}
				}
				ps.Images = append(ps.Images, u)
			}
		}
		v.Prompts[i] = ps
		total += p.NumImages
		done += p.ImagesDone
	}
	v.Progress = fraction(done, total)
	if total > 0 && !job.Status.Terminal() {
		sum := 0.0
		for _, p := range v.Prompts {
			sum += p.Progress * float64(p.NumImages)
		}
		v.Progress = sum / float64(total)
	}
	if job.Status.Terminal() {
		m, err := diffute.Manifests{Media: s.Media, TTL: s.mediaTTL(), Retention: s.mediaRetention()}.For(ctx, job, "", "")
		if err != nil {
			return nil, &jobError{jobID: job.ID, err: fmt.Errorf("manifest: %w", err)}
		}
		v.Manifest = m
	}
	wh, err := s.webhookStatus(ctx, job)
	if err != nil {
		return nil, &jobError{jobID: job.ID, err: err}
	}
	v.Webhook = wh
	return v, nil
}

func (s *Server) webhookStatus(ctx context.Context, job *diffute.Job) (WebhookStatus, error) {
	if job.Webhook == "" {
		return WebhookStatus{State: diffute.DeliveryNone}, nil
	}
	wh := WebhookStatus{URL: job.Webhook, State: diffute.DeliveryPending}
	// The state is the terminal message's (a delivered "started" message says
	// nothing about the result), and every attempt is listed. Messages first,
	// as in listDeliveries, so the attempts include all the states reflect.
	msgs, err := s.Webhooks.WebhookMessages(ctx, job.Org, job.Project, job.ID)
	if err != nil {
		return wh, fmt.Errorf("list webhook messages: %w", err)
	}
	attempts, err := s.Store.Deliveries(ctx, job.Org, job.Project, job.ID)
	if err != nil {
		return wh, fmt.Errorf("list deliveries: %w", err)
	}
	wh.Attempts = len(attempts)
	for _, a := range attempts {
		wh.LastStatusCode = a.StatusCode
	}
	for _, m := range msgs {
		if m.Event == diffute.EventCompleted {
			wh.State = m.State // pending, delivered or failed (gave up)
		}
	}
	if msgs == nil {
		msgs = []diffute.WebhookMessage{}
	}
	wh.Log = &DeliveryLog{Messages: msgs, Deliveries: deliveryViews(attempts)}
	return wh, nil
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func fraction(done, total int) float64 {
	if total <= 0 {
		return 0
	}
	f := float64(done) / float64(total)
	return min(max(f, 0), 1)
}

// promptProgress is the finished share of a prompt's images, counting the steps done
// on the images being denoised now.
func promptProgress(p diffute.JobPrompt) float64 {
	if p.NumImages <= 0 {
		return 0
	}
	done := float64(p.ImagesDone)
	if p.StepsTotal > 0 && p.ImagesDone < p.NumImages {
		done += float64(p.NumImages-p.ImagesDone) * float64(min(p.StepsDone, p.StepsTotal)) / float64(p.StepsTotal)
	}
	return min(done/float64(p.NumImages), 1)
}
