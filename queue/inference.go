package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/imageenc"
	"github.com/diffute/diffute/store"
)

// progressInterval throttles progress writes: the engine may report a step every
// few milliseconds, and every write takes SQLite's one write lock.
const progressInterval = 200 * time.Millisecond

// errCanceled is the cause set on a job's context when its worker sees that the
// job was cancelled.
var errCanceled = errors.New("queue: job canceled")

type inferenceWorker struct {
	river.WorkerDefaults[diffute.InferenceArgs]
	q *Queue
}

// Timeout disables River's per-job timeout: a large batch on a CPU can take far
// longer than its one-minute default.
func (w *inferenceWorker) Timeout(*river.Job[diffute.InferenceArgs]) time.Duration { return -1 }

func (w *inferenceWorker) Work(ctx context.Context, rj *river.Job[diffute.InferenceArgs]) error {
	id := rj.Args.JobID
	select {
	case w.q.slots <- struct{}{}:
		defer func() { <-w.q.slots }()
	case <-ctx.Done():
		return fmt.Errorf("queue: job %d not started: %w", id, ctx.Err())
	}
	err := w.run(ctx, id)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errCanceled):
		return river.JobCancel(err)
	case ctx.Err() != nil:
		// This process is stopping and its shutdown timeout ran out: hand the job
		// back at once, without spending an attempt, so that another worker (or
		// this one after a restart) resumes it from its stored images.
		w.q.cfg.Logger.InfoContext(context.WithoutCancel(ctx), "handing back an interrupted job", slog.Int64("job_id", id))
		return river.JobSnooze(0)
	case rj.Attempt >= rj.MaxAttempts && ctx.Err() == nil:
		// The last attempt: fail the job so that the application hears about it
		// rather than waiting for a webhook that never comes.
		w.q.cfg.Logger.ErrorContext(ctx, "inference job failed after its last attempt",
			slog.Int64("job_id", id), slog.Int("attempt", rj.Attempt), slog.String("error", err.Error()))
		if ferr := w.q.finish(ctx, id, diffute.StatusFailed, "internal error: "+err.Error()); ferr != nil {
			return errors.Join(err, ferr)
		}
	}
	return err
}

// run works job id. It returns nil when the job ended (succeeded, failed on an
// engine error, or had nothing to do), an error wrapping errCanceled when it was
// cancelled, and any other error to have River retry it.
func (w *inferenceWorker) run(ctx context.Context, id int64) error {
	store := w.q.store
	job, err := store.JobByID(ctx, id)
	if diffute.ErrorCode(err) == diffute.ENOTFOUND {
		return fmt.Errorf("%w: job %d is gone", errCanceled, id)
	}
	if err != nil {
		return err
	}
	if job.Status.Terminal() {
		return nil // cancelled while queued, or finished by an earlier attempt
	}
	if ok, err := store.StartJob(ctx, id); err != nil {
		return err
	} else if !ok {
		return nil
	}
	if job.Status == diffute.StatusQueued && w.q.cfg.Observer != nil {
		w.q.cfg.Observer.JobStarted(job.Model, time.Since(job.CreatedAt))
	}
	format, err := imageenc.ParseFormat(job.OutputFormat)
	if err != nil {
		return w.q.finish(ctx, id, diffute.StatusFailed, err.Error())
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for i, p := range job.Prompts {
		if err := w.runPrompt(ctx, cancel, job, i, p, format); err != nil {
			var engineErr *engineError
			if errors.As(err, &engineErr) {
				return w.q.finish(ctx, id, diffute.StatusFailed, engineErr.Error())
			}
			return err
		}
	}
	return w.q.finish(ctx, id, diffute.StatusSucceeded, "")
}

// engineError marks a failure of Engine.Generate itself (not of the context): it
// fails the job instead of being retried, since the same request would fail again.
type engineError struct{ err error }

func (e *engineError) Error() string { return e.err.Error() }
func (e *engineError) Unwrap() error { return e.err }

func (w *inferenceWorker) runPrompt(ctx context.Context, cancel context.CancelCauseFunc, job *diffute.Job, i int, p diffute.JobPrompt, format imageenc.Format) error {
	// Images are recorded in order, so the recorded ones are a prefix; image k is
	// generated from Seed+k, so the rest can be generated on their own.
	first := len(p.Images)
	if first >= p.NumImages {
		// Done by an earlier attempt, which may have stopped before writing the
		// prompt.completed message; writing it again is a no-op.
		return w.q.store.PromptCompleted(ctx, job.ID, i)
	}
	req := diffute.GenerateRequest{
		Model: job.Model, Prompt: p.StyledPrompt(), NegativePrompt: p.NegativePrompt,
		NumImages: p.NumImages - first, Width: p.Width, Height: p.Height,
		Steps: p.Steps, GuidanceScale: p.GuidanceScale, Scheduler: p.Scheduler,
		Seed: *p.Seed + int64(first), RNG: p.RNG,
	}
	// The recipe covers all the prompt's images, whichever this attempt makes.
	whole := req
	whole.NumImages, whole.Seed = p.NumImages, *p.Seed
	recipe, err := w.q.cfg.Engine.Recipe(ctx, whole)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("queue: job %d interrupted: %w", job.ID, context.Cause(ctx))
		}
		return &engineError{err}
	}
	if err := w.q.store.RecordRecipe(ctx, job.ID, i, recipe); err != nil {
		return err
	}
	var engineSteps atomic.Int64 // the steps the engine reports: the model's default when p.Steps is 0
	progress := w.progress(ctx, cancel, job.ID, i)
	start := time.Now()
	imgs, err := w.q.cfg.Engine.Generate(ctx, req, func(pr diffute.Progress) {
		engineSteps.Store(int64(pr.Steps))
		progress(pr)
	})
	elapsed := time.Since(start)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errCanceled) {
			return cause
		}
		if ctx.Err() != nil {
			return fmt.Errorf("queue: job %d interrupted: %w", job.ID, context.Cause(ctx))
		}
		return &engineError{err}
	}
	if len(imgs) != req.NumImages {
		return &engineError{fmt.Errorf("engine returned %d images, want %d", len(imgs), req.NumImages)}
	}
	steps := int64(p.Steps)
	if n := engineSteps.Load(); n > 0 {
		steps = n
	}
	// Each image is metered with its record, in one transaction: its share of
	// the batch's engine time, and its own pixel-steps.
	perImage := diffute.Usage{Images: 1, PixelSteps: int64(p.Width) * int64(p.Height) * steps,
		EngineTime: elapsed / time.Duration(len(imgs))}
	var buf bytes.Buffer
	for j, img := range imgs {
		idx := first + j
		buf.Reset()
		if err := imageenc.Encode(&buf, img, format, imageenc.Options{}); err != nil {
			return &engineError{fmt.Errorf("encode image %d of %s: %w", idx, p.Name, err)}
		}
		key := diffute.MediaKey(job.Org, job.Project, job.ID, p.Name, idx, strings.TrimPrefix(format.Ext(), "."))
		if err := w.q.cfg.Media.Put(ctx, key, bytes.Clone(buf.Bytes()), format.ContentType()); err != nil {
			return fmt.Errorf("queue: store %s: %w", key, err)
		}
		if err := w.q.store.RecordImage(ctx, job.ID, i, idx, key, perImage); err != nil {
			return err
		}
	}
	return w.q.store.PromptCompleted(ctx, job.ID, i)
}

// progress returns the engine's progress callback for prompt i: it records steps
// at most every progressInterval (and always the last), and cancels the run when
// the write finds the job no longer running.
func (w *inferenceWorker) progress(ctx context.Context, cancel context.CancelCauseFunc, id int64, i int) func(diffute.Progress) {
	var (
		mu   sync.Mutex
		last time.Time
	)
	return func(pr diffute.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if pr.Step < pr.Steps && time.Since(last) < progressInterval {
			return
		}
		last = time.Now()
		active, err := w.q.store.RecordProgress(ctx, id, i, pr.Step, pr.Steps)
		if err == nil && !active {
			cancel(errCanceled)
		}
		// A failed progress write is not worth failing the job over; the next
		// one, or the image records, will tell.
	}
}

// finish ends job id with status and writes its webhook delivery (see
// store.Store.FinishJob). A job cancelled meanwhile is left as it is.
func (q *Queue) finish(ctx context.Context, id int64, status diffute.JobStatus, msg string) error {
	job, err := q.store.FinishJob(ctx, store.FinishParams{JobID: id, Status: status, Error: msg})
	if diffute.ErrorCode(err) == diffute.ECONFLICT {
		return nil
	}
	if err != nil {
		return err
	}
	if q.cfg.OnFinish != nil {
		q.cfg.OnFinish(job)
	}
	attrs := []slog.Attr{slog.Int64("job_id", id), slog.String("org", job.Org), slog.String("project", job.Project),
		slog.String("model", job.Model), slog.String("status", string(job.Status)), slog.Bool("webhook", job.Webhook != "")}
	level := slog.LevelInfo
	if !job.StartedAt.IsZero() && !job.FinishedAt.IsZero() {
		attrs = append(attrs, durationMS(job.FinishedAt.Sub(job.StartedAt)))
	}
	if job.Status == diffute.StatusFailed {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("error", msg))
	}
	q.cfg.Logger.LogAttrs(ctx, level, "inference job finished", attrs...)
	return nil
}
