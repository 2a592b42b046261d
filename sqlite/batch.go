package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/diffute/diffute"
)

// maxJobBatch bounds how many accepted jobs share one transaction.
const maxJobBatch = 64

// jobBatcher commits concurrent CreateJob calls together (group commit). SQLite has
// one writer, and most of a job's insert cost is per statement and per commit
// (parsing River's insert, the WAL write), so while one transaction runs, the jobs
// that arrive queue up and go into the next one: one River InsertManyTx, one jobs
// insert each, one prompts insert, one commit. Each job still has its row and its
// River job in the same transaction. A lone request is committed at once, so this
// adds no latency when the server is quiet.
type jobBatcher struct {
	mu      sync.Mutex
	pending []*pendingJob
	leading bool
}

type pendingJob struct {
	job     *diffute.Job
	prompts []string // each prompt's request as JSON
	done    chan error
}

// CreateJob stores job and its prompts and inserts its River job, all in one
// transaction. The caller sets ID, Status (queued) and CreatedAt; prompts must
// carry resolved seeds.
func (s *Store) CreateJob(ctx context.Context, job *diffute.Job) error {
	if job.ID <= 0 || job.Status == "" || job.CreatedAt.IsZero() || len(job.Prompts) == 0 {
		return diffute.Errorf(diffute.EINTERNAL, "CreateJob: ID, Status, CreatedAt and prompts must be set")
	}
	// Encode before queueing so the single write connection is held only for
	// the statements themselves.
	p := &pendingJob{job: job, prompts: make([]string, len(job.Prompts)), done: make(chan error, 1)}
	for i, pr := range job.Prompts {
		if pr.Seed == nil {
			return diffute.Errorf(diffute.EINTERNAL, "CreateJob: prompt %d has no resolved seed", i)
		}
		req, err := json.Marshal(pr.PromptRequest)
		if err != nil {
			return fmt.Errorf("sqlite: encode prompt: %w", err)
		}
		p.prompts[i] = string(req)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	b := &s.db.batch
	b.mu.Lock()
	b.pending = append(b.pending, p)
	if b.leading {
		b.mu.Unlock()
		// The leader commits this job with the next batch. Wait for the outcome
		// even if ctx ends: the job may already be committed, and the caller
		// must not report a stored job as refused.
		return <-p.done
	}
	b.leading = true
	b.mu.Unlock()

	// Lead: commit batches until nothing is pending. The batch runs detached from
	// this request's context, since it carries other requests' jobs too.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for {
		b.mu.Lock()
		n := min(len(b.pending), maxJobBatch)
		if n == 0 {
			b.leading = false
			b.mu.Unlock()
			break
		}
		batch := b.pending[:n:n]
		b.pending = b.pending[n:]
		b.mu.Unlock()
		s.commitBatch(lctx, batch)
	}
	return <-p.done
}

// commitBatch inserts batch in one transaction; when that fails (one bad job
// spoils the batch), each job is retried alone so that only it fails.
func (s *Store) commitBatch(ctx context.Context, batch []*pendingJob) {
	err := s.insertJobs(ctx, batch)
	if err == nil || len(batch) == 1 {
		for _, p := range batch {
			p.done <- err
		}
		return
	}
	for _, p := range batch {
		p.done <- s.insertJobs(ctx, []*pendingJob{p})
	}
}

func (s *Store) insertJobs(ctx context.Context, batch []*pendingJob) error {
	params := make([]river.InsertManyParams, len(batch))
	for i, p := range batch {
		params[i] = river.InsertManyParams{Args: diffute.InferenceArgs{JobID: p.job.ID},
			InsertOpts: &river.InsertOpts{MaxAttempts: InferenceMaxAttempts}}
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO prompts (job_id, idx, request) VALUES `)
	var args []any
	for _, p := range batch {
		for i, req := range p.prompts {
			if len(args) > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?)")
			args = append(args, p.job.ID, i, req)
		}
	}

	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: create job: %w", err)
	}
	defer tx.Rollback()
	res, err := s.db.river.InsertManyTx(ctx, tx, params)
	if err != nil {
		return fmt.Errorf("sqlite: create job: enqueue: %w", err)
	}
	stmt := tx.StmtContext(ctx, s.db.insertJob)
	for i, p := range batch {
		if err := insertJob(ctx, stmt, p.job, res[i].Job.ID); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("sqlite: create job: prompts: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create job: commit: %w", err)
	}
	return nil
}

func insertJob(ctx context.Context, stmt *sql.Stmt, job *diffute.Job, riverJobID int64) error {
	if _, err := stmt.ExecContext(ctx,
		job.ID, job.Org, job.Project, job.Name, job.Model, job.Webhook, job.Secret,
		outputFormat(job.OutputFormat), string(job.Status), riverJobID, job.CreatedAt.UTC()); err != nil {
		return fmt.Errorf("sqlite: create job: %w", err)
	}
	return nil
}
