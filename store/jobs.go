package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/secretbox"
)

// Store is the SQLite implementation of diffute.Store and diffute.KeyStore, plus
// the job and delivery updates that package queue's workers make.
type Store struct {
	db      *DB
	secrets *secretbox.Box // Options.Secrets; nil: no secret may be read or written (errNoSecrets)
}

var (
	_ diffute.Store    = (*Store)(nil)
	_ diffute.KeyStore = (*Store)(nil)
)

// querier is what both *sql.DB and *sql.Tx offer, so reads can run in or out of a
// transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// jobInsert is what a submission encodes before its transaction, so that the
// single write connection is held only for the statements themselves.
type jobInsert struct {
	prompts   []string // each prompt's request as JSON
	secret    string   // sealed when a secret box is set
	numImages int
}

func (s *Store) prepareJobInsert(job *diffute.Job) (*jobInsert, error) {
	if job.ID <= 0 || job.Status == "" || job.CreatedAt.IsZero() || len(job.Prompts) == 0 {
		return nil, diffute.Errorf(diffute.EINTERNAL, "CreateJob: ID, Status, CreatedAt and prompts must be set")
	}
	ins := &jobInsert{prompts: make([]string, len(job.Prompts)), secret: job.Secret}
	for i, p := range job.Prompts {
		if p.Seed == nil {
			return nil, diffute.Errorf(diffute.EINTERNAL, "CreateJob: prompt %d has no resolved seed", i)
		}
		req, err := json.Marshal(p.PromptRequest)
		if err != nil {
			return nil, fmt.Errorf("store: encode prompt: %w", err)
		}
		ins.prompts[i] = string(req)
		ins.numImages += p.NumImages
	}
	if s.secrets == nil {
		return nil, errNoSecrets
	}
	sealed, err := s.secrets.Seal(job.Secret, secretContext(job.ID))
	if err != nil {
		return nil, fmt.Errorf("store: create job: %w", err)
	}
	ins.secret = sealed
	return ins, nil
}

const insertJobSQL = `INSERT INTO jobs
	(id, org, project, name, model, webhook, secret, output_format, status, error, river_job_id, created_at, num_images, webhook_events)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?)`

func outputFormat(f string) string {
	if f == "" {
		return diffute.FormatPNG
	}
	return f
}

// Job returns the job id of org/project with its prompts and images; ENOTFOUND
// when there is none there.
func (s *Store) Job(ctx context.Context, org, project string, id int64) (*diffute.Job, error) {
	return s.openSecret(loadJob(ctx, s.db.read, id, &scope{org, project}))
}

// JobByID returns job id whatever its tenant, for the workers; ENOTFOUND when
// absent.
func (s *Store) JobByID(ctx context.Context, id int64) (*diffute.Job, error) {
	return s.openSecret(loadJob(ctx, s.db.read, id, nil))
}

type scope struct{ org, project string }

func loadJob(ctx context.Context, q querier, id int64, sc *scope) (*diffute.Job, error) {
	query := `SELECT id, org, project, name, model, webhook, secret, output_format, status, error,
		created_at, started_at, finished_at, num_images, usage_images, usage_pixel_steps, usage_engine_ms,
		media_deleted_at, webhook_events FROM jobs WHERE id = ?`
	args := []any{id}
	if sc != nil {
		query += ` AND org = ? AND project = ?`
		args = append(args, sc.org, sc.project)
	}
	var (
		j                 diffute.Job
		status            string
		started, finished sql.NullTime
		deleted           sql.NullTime
		engineMS          int64
		events            string
	)
	err := q.QueryRowContext(ctx, query, args...).Scan(&j.ID, &j.Org, &j.Project, &j.Name, &j.Model,
		&j.Webhook, &j.Secret, &j.OutputFormat, &status, &j.Error, &j.CreatedAt, &started, &finished,
		&j.NumImages, &j.Usage.Images, &j.Usage.PixelSteps, &engineMS, &deleted, &events)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, diffute.Errorf(diffute.ENOTFOUND, "job %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: load job: %w", err)
	}
	j.Status = diffute.JobStatus(status)
	j.StartedAt, j.FinishedAt = started.Time, finished.Time
	j.MediaDeletedAt, j.Usage.EngineTime = deleted.Time, time.Duration(engineMS)*time.Millisecond
	j.WebhookEvents = diffute.SplitEvents(events)

	rows, err := q.QueryContext(ctx, `SELECT idx, request, images_done, steps_done, steps_total, recipe FROM prompts WHERE job_id = ? ORDER BY idx`, id)
	if err != nil {
		return nil, fmt.Errorf("store: load prompts: %w", err)
	}
	for rows.Next() {
		var (
			p      diffute.JobPrompt
			req    string
			recipe sql.NullString
		)
		if err := rows.Scan(&p.Index, &req, &p.ImagesDone, &p.StepsDone, &p.StepsTotal, &recipe); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: load prompts: %w", err)
		}
		if err := json.Unmarshal([]byte(req), &p.PromptRequest); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: decode prompt %d of job %d: %w", p.Index, id, err)
		}
		if recipe.Valid {
			p.Recipe = new(diffute.Recipe)
			if err := json.Unmarshal([]byte(recipe.String), p.Recipe); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: decode the recipe of prompt %d of job %d: %w", p.Index, id, err)
			}
		}
		j.Prompts = append(j.Prompts, p)
	}
	// Close before the next query: with the single write connection, an open
	// result set would hold the only connection.
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: load prompts: %w", err)
	}

	rows, err = q.QueryContext(ctx, `SELECT prompt_idx, image_idx, media_key FROM images
		WHERE job_id = ? ORDER BY prompt_idx, image_idx`, id)
	if err != nil {
		return nil, fmt.Errorf("store: load images: %w", err)
	}
	for rows.Next() {
		var (
			pi, ii int
			key    string
		)
		if err := rows.Scan(&pi, &ii, &key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: load images: %w", err)
		}
		if pi >= 0 && pi < len(j.Prompts) {
			j.Prompts[pi].Images = append(j.Prompts[pi].Images, key)
		}
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("store: load images: %w", err)
	}
	return &j, nil
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	return errors.Join(err, rows.Close())
}

// CancelJob cancels a queued or running job of org/project and its River job.
// A queued job never runs; a running one has its work context cancelled through
// River's control notification, and its worker also sees the status at its next
// progress write. ECONFLICT when the job is already terminal.
func (s *Store) CancelJob(ctx context.Context, org, project string, id int64) (*diffute.Job, error) {
	tx, err := s.db.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: cancel job: %w", err)
	}
	defer tx.Rollback()
	var (
		status  string
		riverID sql.NullInt64
	)
	err = tx.QueryRowContext(ctx, `SELECT status, river_job_id FROM jobs WHERE id = ? AND org = ? AND project = ?`,
		id, org, project).Scan(&status, &riverID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, diffute.Errorf(diffute.ENOTFOUND, "job %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: cancel job: %w", err)
	}
	if diffute.JobStatus(status).Terminal() {
		return nil, diffute.Errorf(diffute.ECONFLICT, "job %d is already %s", id, status)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = 'canceled', finished_at = ? WHERE id = ?`,
		time.Now().UTC(), id); err != nil {
		return nil, fmt.Errorf("store: cancel job: %w", err)
	}
	if riverID.Valid {
		if _, err := s.db.river.JobCancelTx(ctx, tx.Tx, riverID.Int64); err != nil && !errors.Is(err, river.ErrNotFound) {
			return nil, fmt.Errorf("store: cancel job: river: %w", err)
		}
	}
	job, err := s.openSecret(loadJob(ctx, tx, id, nil))
	if err != nil {
		return nil, err
	}
	if err := s.db.addEventDelivery(ctx, tx, job, diffute.EventCompleted, ""); err != nil {
		return nil, fmt.Errorf("store: cancel job: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: cancel job: commit: %w", err)
	}
	return job, nil
}

// Ping checks that both pools answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.read.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	var one int
	if err := s.db.read.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}
