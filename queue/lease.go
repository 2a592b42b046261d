package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// newClientID returns a River client ID that says where the worker runs and is
// unique across restarts: the host name and a random suffix.
func newClientID() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, host)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "diffute-" + host + "-" + hex.EncodeToString(b[:])
}

// startLease takes this worker's lease and keeps renewing it, rescuing the jobs
// of workers whose leases ran out, until the returned stop is called; stop drops
// the lease so that nothing of this worker looks orphaned or alive afterwards.
func (q *Queue) startLease(ctx context.Context) (stop func(), err error) {
	ttl, id := q.cfg.LeaseTTL, q.cfg.ClientID
	if err := q.db.RenewLease(ctx, id, ttl); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Renewing four times per TTL survives a slow database for a while;
		// the rescue runs at the same pace on every worker and is idempotent.
		tick := time.NewTicker(ttl / 4)
		defer tick.Stop()
		for {
			q.rescueOrphans(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := q.db.RenewLease(ctx, id, ttl); err != nil && ctx.Err() == nil {
				q.cfg.Logger.WarnContext(ctx, "worker lease renewal failed", slog.String("error", err.Error()))
			}
		}
	}()
	return func() {
		cancel()
		<-done
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		if err := q.db.DropLease(dctx, id); err != nil {
			q.cfg.Logger.Warn("dropping worker lease", slog.String("error", err.Error()))
		}
	}, nil
}

func (q *Queue) rescueOrphans(ctx context.Context) {
	n, err := q.db.RescueOrphanedJobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			q.cfg.Logger.WarnContext(ctx, "rescuing orphaned jobs failed", slog.String("error", err.Error()))
		}
		return
	}
	if n > 0 {
		q.cfg.Logger.InfoContext(ctx, "rescued jobs of a worker that stopped renewing its lease", slog.Int("jobs", n))
	}
}
