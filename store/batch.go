package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/diffute/diffute"
)

// maxJobBatch bounds how many accepted jobs share one transaction.
const maxJobBatch = 64

// jobBatcher commits concurrent submissions together (group commit). SQLite has
// one writer, and most of a job's insert cost is per statement and per commit
// (parsing River's insert, the WAL write), so while one transaction runs, the jobs
// that arrive queue up and go into the next one: each job's idempotency claim and
// quota check in its own savepoint, then one River InsertManyTx, one jobs insert
// each, one prompts insert and one commit for all. Each job still has its row and
// its River job in the same transaction, and a lone request is committed at once,
// so this adds no latency when the server is quiet.
type jobBatcher struct {
	mu      sync.Mutex
	pending []*pendingJob
	leading bool
}

type pendingJob struct {
	job  *diffute.Job
	ins  *jobInsert
	sub  *diffute.Submission // nil: CreateJob, no checks
	res  submitResult
	done chan submitResult
}

type submitResult struct {
	jobID    int64
	replayed bool
	err      error
}

// CreateJob stores job and its prompts and inserts its River job, all in one
// transaction. The caller sets ID, Status (queued) and CreatedAt; prompts must
// carry resolved seeds.
func (s *Store) CreateJob(ctx context.Context, job *diffute.Job) error {
	_, _, err := s.submit(ctx, job, nil)
	return err
}

// SubmitJob is CreateJob with sub's idempotency key and quotas checked in the same
// transaction: a repeated key answers the original job (replayed), a different
// request under the key is refused, and a project over its quota is refused.
func (s *Store) SubmitJob(ctx context.Context, job *diffute.Job, sub diffute.Submission) (int64, bool, error) {
	return s.submit(ctx, job, &sub)
}

func (s *Store) submit(ctx context.Context, job *diffute.Job, sub *diffute.Submission) (int64, bool, error) {
	ins, err := s.prepareJobInsert(job)
	if err != nil {
		return 0, false, err
	}
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	p := &pendingJob{job: job, ins: ins, sub: sub, done: make(chan submitResult, 1)}

	b := &s.db.batch
	b.mu.Lock()
	b.pending = append(b.pending, p)
	if b.leading {
		b.mu.Unlock()
		// The leader commits this job with the next batch. Wait for the outcome
		// even if ctx ends: the job may already be committed, and the caller
		// must not report a stored job as refused.
		r := <-p.done
		return r.jobID, r.replayed, r.err
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
	r := <-p.done
	return r.jobID, r.replayed, r.err
}

// commitBatch runs batch in one transaction; when that fails (a job that cannot be
// stored spoils its batch), each job is retried alone so that only it fails.
func (s *Store) commitBatch(ctx context.Context, batch []*pendingJob) {
	err := s.insertBatch(ctx, batch)
	if err != nil && len(batch) > 1 {
		for _, p := range batch {
			if err := s.insertBatch(ctx, []*pendingJob{p}); err != nil {
				p.res = submitResult{err: err}
			}
			p.done <- p.res
		}
		return
	}
	for _, p := range batch {
		if err != nil {
			p.res = submitResult{err: err}
		}
		p.done <- p.res
	}
}

// tenant names a project for counting what a batch adds to its quotas.
type tenant struct{ org, project string }

// insertBatch writes the jobs of batch that pass their checks, in one
// transaction, and sets each job's result. The results hold only once it returns
// nil (committed).
func (s *Store) insertBatch(ctx context.Context, batch []*pendingJob) error {
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: create job: %w", err)
	}
	defer tx.Rollback()

	if err := s.lockQuotas(ctx, tx, batch); err != nil {
		return err
	}
	// Checks first, each in a savepoint so a refused job leaves no trace. Jobs
	// accepted earlier in the batch count against the later ones' quotas.
	accepted := batch[:0:0]
	activeAdded := map[tenant]int{}
	imagesAdded := map[tenant]int{}
	for _, p := range batch {
		p.res = submitResult{}
		if p.sub != nil {
			t := tenant{p.job.Org, p.job.Project}
			id, replayed, err := s.checkSubmission(ctx, tx, p, activeAdded[t], imagesAdded[t])
			if err != nil && diffute.ErrorCode(err) == diffute.EINTERNAL {
				return err
			}
			if err != nil || replayed {
				p.res = submitResult{jobID: id, replayed: replayed, err: err}
				continue
			}
			activeAdded[t]++
			imagesAdded[t] += p.ins.numImages
		}
		accepted = append(accepted, p)
	}
	if len(accepted) > 0 {
		if err := s.insertJobs(ctx, tx, accepted); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: create job: commit: %w", err)
	}
	for _, p := range accepted {
		p.res = submitResult{jobID: p.job.ID}
	}
	return nil
}

// lockQuotas takes, on PostgreSQL, a transaction-scoped advisory lock for each
// project of batch that has a quota, so that two API nodes cannot both count the
// same last slot: the second waits for the first to commit and then counts its
// job. The locks are taken in one sorted order, so two nodes' batches holding
// several projects cannot deadlock. SQLite's one writer serialises already.
func (s *Store) lockQuotas(ctx context.Context, tx *tx, batch []*pendingJob) error {
	if s.db.dialect != Postgres {
		return nil
	}
	var keys []string
	seen := map[string]bool{}
	for _, p := range batch {
		if p.sub == nil || (p.sub.Quota.MaxActiveJobs <= 0 && p.sub.Quota.MaxImagesPerDay <= 0) {
			continue
		}
		// Org and project are path segments: neither holds a "/".
		k := "diffute-quota/" + p.job.Org + "/" + p.job.Project
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(?, 0))`, k); err != nil {
			return fmt.Errorf("store: submit job: quota lock: %w", err)
		}
	}
	return nil
}

// checkSubmission claims p's idempotency key and checks its quotas inside a
// savepoint, rolled back when the job is not to be stored.
func (s *Store) checkSubmission(ctx context.Context, tx *tx, p *pendingJob, activeAdded, imagesAdded int) (int64, bool, error) {
	if _, err := tx.ExecContext(ctx, `SAVEPOINT submission`); err != nil {
		return 0, false, fmt.Errorf("store: submit job: %w", err)
	}
	id, replayed, err := s.claimAndCheck(ctx, tx, p, activeAdded, imagesAdded)
	if err != nil || replayed {
		if _, rerr := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT submission`); rerr != nil {
			return 0, false, fmt.Errorf("store: submit job: %w", rerr)
		}
	}
	if _, rerr := tx.ExecContext(ctx, `RELEASE SAVEPOINT submission`); rerr != nil {
		return 0, false, fmt.Errorf("store: submit job: %w", rerr)
	}
	return id, replayed, err
}

// insertJobs writes the River jobs (one InsertManyTx), the job rows and all their
// prompts (one statement) of jobs in tx.
func (s *Store) insertJobs(ctx context.Context, tx *tx, jobs []*pendingJob) error {
	params := make([]river.InsertManyParams, len(jobs))
	for i, p := range jobs {
		params[i] = river.InsertManyParams{Args: diffute.InferenceArgs{JobID: p.job.ID},
			InsertOpts: &river.InsertOpts{MaxAttempts: s.db.opts.Inference.MaxAttempts,
				Queue: s.db.opts.Inference.Queue(p.job.Model, s.db.SharedByWorkers())}}
	}
	res, err := s.db.river.InsertManyTx(ctx, tx.Tx, params)
	if err != nil {
		return fmt.Errorf("store: create job: enqueue: %w", err)
	}
	stmt := tx.StmtContext(ctx, s.db.insertJob)
	var b strings.Builder
	b.WriteString(`INSERT INTO prompts (job_id, idx, request) VALUES `)
	var args []any
	for i, p := range jobs {
		job := p.job
		if _, err := stmt.ExecContext(ctx,
			job.ID, job.Org, job.Project, job.Name, job.Model, job.Webhook, p.ins.secret,
			outputFormat(job.OutputFormat), string(job.Status), res[i].Job.ID, job.CreatedAt.UTC(), p.ins.numImages,
			diffute.JoinEvents(job.WebhookEvents)); err != nil {
			return fmt.Errorf("store: create job: %w", err)
		}
		for k, req := range p.ins.prompts {
			if len(args) > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?)")
			args = append(args, job.ID, k, req)
		}
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("store: create job: prompts: %w", err)
	}
	return nil
}
