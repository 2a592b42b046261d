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
	"github.com/diffute/diffute/sqlite"
	"github.com/diffute/diffute/webhook"
)

type deliveryWorker struct {
	river.WorkerDefaults[diffute.DeliveryArgs]
	q *Queue
	// retryAfter carries a receiver's Retry-After from Work to NextRetry, which
	// River calls right after Work returns, keyed by River job ID.
	retryAfter sync.Map
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
	store := w.q.store
	d, err := store.Delivery(ctx, rj.Args.DeliveryID)
	if diffute.ErrorCode(err) == diffute.ENOTFOUND {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if d.Status != sqlite.DeliveryPending {
		return nil
	}
	// The project's secrets are read at each attempt, so a rotation applies to
	// retries of messages written before it.
	secrets, err := store.WebhookSecrets(ctx, d.Org, d.Project)
	if err != nil {
		return err
	}
	signing := make([]string, len(secrets))
	for i, sec := range secrets {
		signing[i] = sec.Secret
	}
	res := w.q.sender.Send(ctx, webhook.Message{ID: d.MessageID, URL: d.URL, Secret: d.Secret, Body: d.Payload, SigningSecrets: signing})
	rec := sqlite.AttemptRecord{
		DeliveryID: d.ID, Attempt: rj.Args.AttemptBase + rj.Attempt, At: time.Now().Add(-res.Latency),
		StatusCode: res.StatusCode, Latency: res.Latency, Excerpt: res.Excerpt,
		Status: sqlite.DeliveryPending,
	}
	if res.Err != nil {
		rec.Error = res.Err.Error()
	}
	gone := res.StatusCode == http.StatusGone
	switch {
	case res.Err == nil:
		rec.Status = sqlite.DeliveryDelivered
	case gone || rj.Attempt >= rj.MaxAttempts:
		rec.Status = sqlite.DeliveryFailed
	}
	// Record even when the attempt's context ended: the attempt happened.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := store.RecordDeliveryAttempt(rctx, rec); err != nil {
		return fmt.Errorf("queue: delivery %d: %w", d.ID, errors.Join(res.Err, err))
	}
	switch {
	case res.Err == nil:
		return nil
	case gone:
		// 410 Gone: the receiver says the endpoint no longer exists; stop.
		return river.JobCancel(res.Err)
	}
	if res.RetryAfter > 0 && rec.Status == sqlite.DeliveryPending {
		w.retryAfter.Store(rj.ID, res.RetryAfter)
	}
	return res.Err
}
