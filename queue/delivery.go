package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/store"
	"github.com/diffute/diffute/webhook"
)

type deliveryWorker struct {
	river.WorkerDefaults[diffute.DeliveryArgs]
	q *Queue
	// nextRetry carries the time of the next attempt from Work (which logs it)
	// to NextRetry, which River calls right after Work returns, keyed by River
	// job ID.
	nextRetry sync.Map

	secretsMu sync.Mutex
	secrets   map[string]cachedSecrets // by org + "/" + project
}

// secretsTTL is how long the worker reuses a project's signing secrets: a
// rotation by another process shows in signatures within it (one through this
// process's store at once), and a burst of deliveries to one
// project reads them once instead of once per attempt.
const secretsTTL = time.Second

type cachedSecrets struct {
	secrets []string
	at      time.Time
	gen     uint64
}

// signingSecrets returns the secrets that sign org/project's messages now.
func (w *deliveryWorker) signingSecrets(ctx context.Context, org, project string) ([]string, error) {
	key := org + "/" + project
	w.secretsMu.Lock()
	c, ok := w.secrets[key]
	w.secretsMu.Unlock()
	gen := w.q.store.SecretsGeneration()
	if ok && c.gen == gen && time.Since(c.at) < secretsTTL {
		return c.secrets, nil
	}
	list, err := w.q.store.WebhookSecrets(ctx, org, project)
	if err != nil {
		return nil, err
	}
	c = cachedSecrets{secrets: make([]string, len(list)), at: time.Now(), gen: gen}
	for i, sec := range list {
		c.secrets[i] = sec.Secret
	}
	w.secretsMu.Lock()
	if w.secrets == nil {
		w.secrets = map[string]cachedSecrets{}
	}
	w.secrets[key] = c
	w.secretsMu.Unlock()
	return c.secrets, nil
}

func newDeliveryWorker(q *Queue) *deliveryWorker { return &deliveryWorker{q: q} }

// Timeout leaves room for one attempt plus the bookkeeping around it.
func (w *deliveryWorker) Timeout(*river.Job[diffute.DeliveryArgs]) time.Duration {
	return w.q.cfg.Webhook.Timeout + 10*time.Second
}

// NextRetry is the time Work chose for the next attempt (see retryAt).
func (w *deliveryWorker) NextRetry(rj *river.Job[diffute.DeliveryArgs]) time.Time {
	if v, ok := w.nextRetry.LoadAndDelete(rj.ID); ok {
		return v.(time.Time)
	}
	return w.retryAt(rj.Attempt, 0)
}

// retryAt follows webhook.Config.RetrySchedule (with jitter), pushed back to
// the receiver's Retry-After when it asked for longer.
func (w *deliveryWorker) retryAt(attempt int, retryAfter time.Duration) time.Time {
	d, ok := w.q.cfg.Webhook.NextRetry(attempt)
	if !ok {
		s := w.q.cfg.Webhook.RetrySchedule
		d = s[len(s)-1]
	}
	if retryAfter > 0 {
		d = max(d, min(retryAfter, w.q.cfg.Webhook.MaxRetryAfter))
	}
	return time.Now().Add(d)
}

func (w *deliveryWorker) Work(ctx context.Context, rj *river.Job[diffute.DeliveryArgs]) error {
	st := w.q.store
	d, err := st.Delivery(ctx, rj.Args.DeliveryID)
	if diffute.ErrorCode(err) == diffute.ENOTFOUND {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if d.Status != diffute.DeliveryPending {
		return nil
	}
	// The project's secrets are read at each attempt (through a one-second
	// cache), so a rotation applies to retries of messages written before it.
	signing, err := w.signingSecrets(ctx, d.Org, d.Project)
	if err != nil {
		return err
	}
	res := w.q.sender.Send(ctx, webhook.Message{ID: d.MessageID, URL: d.URL, Secret: d.Secret, Body: d.Payload, SigningSecrets: signing})
	rec := store.AttemptRecord{
		DeliveryID: d.ID, Attempt: rj.Args.AttemptBase + rj.Attempt, At: time.Now().Add(-res.Latency),
		StatusCode: res.StatusCode, Latency: res.Latency, Excerpt: res.Excerpt,
		Status: diffute.DeliveryPending,
	}
	if res.Err != nil {
		rec.Error = res.Err.Error()
	}
	gone := res.StatusCode == http.StatusGone
	switch {
	case res.Err == nil:
		rec.Status = diffute.DeliveryDelivered
	case gone || rj.Attempt >= rj.MaxAttempts:
		rec.Status = diffute.DeliveryFailed
	}
	// Record even when the attempt's context ended: the attempt happened.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := st.RecordDeliveryAttempt(rctx, rec); err != nil {
		return fmt.Errorf("queue: delivery %d: %w", d.ID, errors.Join(res.Err, err))
	}
	var next time.Time
	if rec.Status == diffute.DeliveryPending {
		next = w.retryAt(rj.Attempt, res.RetryAfter)
		w.nextRetry.Store(rj.ID, next)
	}
	w.logAttempt(ctx, d, rec, res, next)
	switch {
	case res.Err == nil:
		return nil
	case gone:
		// 410 Gone: the receiver says the endpoint no longer exists; stop.
		return river.JobCancel(res.Err)
	}
	return res.Err
}

// logAttempt logs one attempt with Diffute's job id and tenant, and reports it to
// the observer. The URL is reduced to its host: its path and query may carry
// tokens of the receiver's.
func (w *deliveryWorker) logAttempt(ctx context.Context, d *store.Delivery, rec store.AttemptRecord, res webhook.Result, next time.Time) {
	outcome, level := AttemptDelivered, slog.LevelInfo
	switch rec.Status {
	case diffute.DeliveryFailed:
		outcome, level = AttemptFailed, slog.LevelError
	case diffute.DeliveryPending:
		outcome, level = AttemptRetrying, slog.LevelWarn
	}
	if o := w.q.cfg.Observer; o != nil {
		o.DeliveryAttempt(outcome, res.StatusCode)
	}
	host := ""
	if u, err := url.Parse(d.URL); err == nil {
		host = u.Host
	}
	attrs := []slog.Attr{
		slog.Int64("job_id", d.JobID), slog.String("org", d.Org), slog.String("project", d.Project),
		slog.String("event", d.Event), slog.String("message_id", d.MessageID), slog.String("host", host),
		slog.Int("attempt", rec.Attempt), slog.String("outcome", outcome), durationMS(res.Latency),
	}
	if res.StatusCode != 0 {
		attrs = append(attrs, slog.Int("status_code", res.StatusCode))
	}
	if res.Err != nil {
		attrs = append(attrs, slog.String("error", redactURL(res.Err.Error(), d.URL, host)))
	}
	if !next.IsZero() {
		attrs = append(attrs, slog.Time("next_retry_at", next.UTC()))
	}
	w.q.cfg.Logger.LogAttrs(ctx, level, "webhook attempt", attrs...)
}

// redactURL replaces the webhook URL in msg (net/http quotes it in its errors)
// with its host.
func redactURL(msg, rawURL, host string) string {
	if rawURL == "" {
		return msg
	}
	if u, err := url.Parse(rawURL); err == nil {
		msg = strings.ReplaceAll(msg, u.String(), host)
	}
	return strings.ReplaceAll(msg, rawURL, host)
}
