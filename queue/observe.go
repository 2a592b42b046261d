package queue

import (
	"context"
	"log/slog"
	"time"
)

// Observer receives what the workers measure (*metrics.Metrics implements it).
type Observer interface {
	// JobStarted records a job of model started after waiting d in its queue.
	JobStarted(model string, d time.Duration)
	// DeliveryAttempt records one webhook attempt's outcome (AttemptDelivered,
	// AttemptRetrying, AttemptFailed) and the receiver's status code, 0 when it
	// did not answer.
	DeliveryAttempt(outcome string, statusCode int)
}

// The outcomes of one webhook attempt.
const (
	AttemptDelivered = "delivered"       // the receiver answered 2xx
	AttemptRetrying  = "failed_retrying" // failed; another attempt is scheduled
	AttemptFailed    = "failed_final"    // failed, and no attempt follows (the last, or 410 Gone)
)

// riverHandler is the slog.Handler River logs through: its routine INFO lines
// (client started, queue started, elected leader) go out at DEBUG, and its
// job_id attribute (River's own job id, not Diffute's) is renamed river_job_id
// so that job_id in Diffute's logs always means one thing.
type riverHandler struct{ slog.Handler }

func newRiverLogger(l *slog.Logger) *slog.Logger { return slog.New(riverHandler{l.Handler()}) }

func (h riverHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.Handler.Enabled(ctx, lowered(level))
}

func (h riverHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, lowered(r.Level), r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "job_id" {
			a.Key = "river_job_id"
		}
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h riverHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return riverHandler{h.Handler.WithAttrs(attrs)}
}

func (h riverHandler) WithGroup(name string) slog.Handler {
	return riverHandler{h.Handler.WithGroup(name)}
}

func lowered(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}

// durationMS is d as the duration_ms attribute, in milliseconds, as every
// duration in Diffute's logs.
func durationMS(d time.Duration) slog.Attr {
	return slog.Float64("duration_ms", float64(d.Microseconds())/1000)
}
