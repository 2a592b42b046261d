package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	// retryAfter carries a receiver's Retry-After from Work to NextRetry, which
	// River calls right after Work returns, keyed by River job ID.
	retryAfter sync.Map

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

// NextRetry follows webhook.Config.RetrySchedule (with jitter), pushed back to
// the receiver's Retry-After when it asked for longer.
func (w *deliveryWorker) NextRetry(rj *river.Job[diffute.DeliveryArgs]) time.Time {
	d, ok := w.q.cfg.Webhook.NextRetry(rj.Attempt)
	if !ok {
		s := w.q.cfg.Webhook.RetrySchedule
		d = s[len(s)-1]
	}
	if v, ok := w.retryAfter.LoadAndDelete(rj.ID); ok {
		d = max(d, min(v.(time.Duration), w.q.cfg.Webhook.MaxRetryAfter))
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
	switch {
	case res.Err == nil:
		return nil
	case gone:
		// 410 Gone: the receiver says the endpoint no longer exists; stop.
		return river.JobCancel(res.Err)
	}
	if res.RetryAfter > 0 && rec.Status == diffute.DeliveryPending {
		w.retryAfter.Store(rj.ID, res.RetryAfter)
	}
	return res.Err
}
