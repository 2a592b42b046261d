package httpapi

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/diffute/diffute"
)

// Bounds of Prefer: wait=N and Cancel-After.
const (
	MaxPreferWait   = 60 * time.Second
	MaxCancelAfter  = 24 * time.Hour
	waitPollDefault = 250 * time.Millisecond
)

// JobEnds tells requests waiting on a job (Prefer: wait) that it has ended.
// serve calls Ended from the queue's OnFinish, so a job this process runs
// answers its waiting PUT at once; a job another process runs (scale-out, an
// API-only node) is seen by the waiter's bounded poll of the store instead:
// no notification crosses processes on SQLite. The zero value is ready.
type JobEnds struct {
	mu      sync.Mutex
	waiters map[int64]map[chan struct{}]struct{}
}

// Ended wakes the requests waiting on job id.
func (e *JobEnds) Ended(id int64) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for ch := range e.waiters[id] {
		close(ch)
	}
	delete(e.waiters, id)
}

// watch returns a channel closed when job id ends, and a function that stops
// watching.
func (e *JobEnds) watch(id int64) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	if e == nil {
		return ch, func() {}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.waiters == nil {
		e.waiters = map[int64]map[chan struct{}]struct{}{}
	}
	if e.waiters[id] == nil {
		e.waiters[id] = map[chan struct{}]struct{}{}
	}
	e.waiters[id][ch] = struct{}{}
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if set := e.waiters[id]; set != nil {
			delete(set, ch)
			if len(set) == 0 {
				delete(e.waiters, id)
			}
		}
	}
}

// preferWait reads "Prefer: wait=N" (RFC 7240; N whole seconds, 1 to 60).
// Other preferences are ignored, as the RFC asks; a wait preference whose
// value is not such a number is a 400 naming the header.
func preferWait(values []string) (time.Duration, bool, error) {
	var wait time.Duration
	found := false
	for _, v := range values {
		for pref := range strings.SplitSeq(v, ",") {
			pref, _, _ = strings.Cut(pref, ";") // preference parameters are not used
			name, value, hasValue := strings.Cut(strings.TrimSpace(pref), "=")
			if !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			value = strings.Trim(strings.TrimSpace(value), `"`)
			n, err := strconv.Atoi(value)
			if !hasValue || err != nil || n < 1 || time.Duration(n)*time.Second > MaxPreferWait {
				return 0, false, diffute.FieldErrorf(diffute.EINVALID, "Prefer",
					"wait must be a whole number of seconds from 1 to %d (got %q)", int(MaxPreferWait/time.Second), truncate(value, 20))
			}
			if found {
				return 0, false, diffute.FieldErrorf(diffute.EINVALID, "Prefer", "wait is given more than once")
			}
			wait, found = time.Duration(n)*time.Second, true
		}
	}
	return wait, found, nil
}

// cancelAfter reads "Cancel-After: D", a Go duration ("90s", "2m") or a
// number of seconds ("30", "1.5"), more than 0 and at most 24 h.
func cancelAfter(values []string) (time.Duration, bool, error) {
	if len(values) == 0 {
		return 0, false, nil
	}
	bad := func(v string) error {
		return diffute.FieldErrorf(diffute.EINVALID, "Cancel-After",
			"must be a duration such as 90s or 2m, or a number of seconds, more than 0 and at most 24h (got %q)", truncate(v, 40))
	}
	if len(values) > 1 {
		return 0, false, bad(strings.Join(values, ", "))
	}
	v := strings.TrimSpace(values[0])
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || secs != secs || secs > MaxCancelAfter.Seconds() {
			return 0, false, bad(v)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 || d > MaxCancelAfter {
		return 0, false, bad(v)
	}
	return d, true, nil
}

// cancelLater cancels job id after d unless it has ended by then. The timer
// lives in this process: a restart forgets it (the job then runs to its end).
func (s *Server) cancelLater(org, project string, id int64, d time.Duration) {
	time.AfterFunc(d, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		job, err := s.Store.CancelJob(ctx, org, project, id)
		switch {
		case err == nil:
			s.JobEnds.Ended(id)
			s.log().InfoContext(ctx, "job cancelled by Cancel-After", "job_id", id, "org", org, "project", project, "status", string(job.Status))
		case diffute.ErrorCode(err) == diffute.ECONFLICT:
			// It had ended already.
		default:
			s.log().WarnContext(ctx, "Cancel-After: cancel job", "job_id", id, "org", org, "project", project, "err", err)
		}
	})
}

func (s *Server) waitPollInterval() time.Duration {
	if s.WaitPollInterval <= 0 {
		return waitPollDefault
	}
	return s.WaitPollInterval
}

// waitEnded waits up to d for job id to end. It returns the job as last read
// (nil when none could be), and whether it has ended; it gives up early when
// the request or the server ends. It wakes on JobEnds and otherwise reads the
// job every WaitPollInterval: a short, bounded poll that only finds jobs
// finished by another process, which no in-process signal reaches.
func (s *Server) waitEnded(ctx context.Context, org, project string, id int64, d time.Duration) (*diffute.Job, bool, error) {
	ended, stop := s.JobEnds.watch(id)
	defer stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(s.waitPollInterval())
	defer tick.Stop()
	var last *diffute.Job
	for {
		job, err := s.Store.Job(ctx, org, project, id)
		if err != nil {
			if ctx.Err() != nil {
				return last, false, nil // the client has gone; nothing to answer
			}
			return nil, false, err
		}
		last = job
		if job.Status.Terminal() {
			return job, true, nil
		}
		select {
		case <-ended:
			ended = nil // read once more, then rely on the poll
		case <-tick.C:
		case <-deadline.C:
			return last, false, nil
		case <-ctx.Done():
			return last, false, nil
		case <-s.streams.closing():
			return last, false, nil
		}
	}
}
