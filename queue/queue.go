package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/store"
	"github.com/diffute/diffute/webhook"
)

// DefaultPollInterval is River's fetch poll interval on SQLite, which has no
// LISTEN/NOTIFY: it bounds the wait between accepting a job and starting it.
const DefaultPollInterval = 50 * time.Millisecond

// DefaultPostgresPollInterval is the poll interval on PostgreSQL, where workers
// wake on LISTEN/NOTIFY; polling is only the fallback (a lost notification, a
// retry coming due), so it can be slow and spare the database.
const DefaultPostgresPollInterval = time.Second

// DefaultLeaseTTL is how long a PostgreSQL worker's lease lasts unrenewed: a
// killed worker's jobs are back in the queue about this long after it died.
const DefaultLeaseTTL = 15 * time.Second

// Delivery queue tuning, measured by the benchmarks in webhook_bench_test.go
// (docs/benchmarks.md): deliveryWorkers is how many webhook attempts run at
// once (mostly waiting on receivers); the poll interval bounds how long a new
// message waits; the cooldown spaces fetches while a backlog drains.
const (
	deliveryWorkers       = 100
	deliveryPollInterval  = 20 * time.Millisecond
	deliveryFetchCooldown = 5 * time.Millisecond
)

// Config configures the queue.
type Config struct {
	Engine diffute.Engine
	Media  diffute.MediaStore
	// Concurrency is the number of inference workers; 0 means this process only
	// inserts jobs and works none (neither inference nor webhooks).
	Concurrency int
	// Models are the models whose inference queues this process works (see
	// store.InferenceQueue); required with Concurrency > 0. A worker never
	// fetches a job for a model it does not serve.
	Models       []string
	Webhook      webhook.Config
	Logger       *slog.Logger
	PollInterval time.Duration // River FetchPollInterval; default by dialect (DefaultPollInterval, DefaultPostgresPollInterval)
	// LeaseTTL is the worker lease on PostgreSQL (default DefaultLeaseTTL); see
	// store.DB.RescueOrphanedJobs.
	LeaseTTL time.Duration
	// ClientID names this process's River client, in River's attempted_by and in
	// the lease table; default a random one.
	ClientID string
	// OnFinish, when set, is called with each job this process finishes (metrics).
	OnFinish func(job *diffute.Job)
	// Observer, when set, receives job starts and webhook attempts (metrics).
	Observer Observer
	// MediaRetention is how long images are kept after their job ends; default
	// diffute.DefaultMediaRetention.
	MediaRetention time.Duration
	// RetentionInterval is how often expired media is deleted; default
	// DefaultRetentionInterval.
	RetentionInterval time.Duration
	// Sweeper, when set, cleans what the media store leaves behind (disk
	// media); the retention job runs it.
	Sweeper MediaSweeper
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.MediaRetention == 0 {
		c.MediaRetention = diffute.DefaultMediaRetention
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Webhook = c.Webhook.WithDefaults()
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("queue: concurrency %d is negative", c.Concurrency))
	}
	if c.Concurrency > 0 && (c.Engine == nil || c.Media == nil) {
		errs = append(errs, errors.New("queue: workers need an Engine and a MediaStore"))
	}
	if c.Concurrency > 0 && len(c.Models) == 0 {
		errs = append(errs, errors.New("queue: workers need the Models they serve"))
	}
	if c.PollInterval < 0 || c.LeaseTTL < 0 || c.MediaRetention < 0 || c.RetentionInterval < 0 {
		errs = append(errs, errors.New("queue: PollInterval, LeaseTTL, MediaRetention and RetentionInterval must not be negative"))
	}
	errs = append(errs, c.Webhook.Validate())
	return errors.Join(errs...)
}

// Queue is the River client with Diffute's workers.
type Queue struct {
	db     *store.DB
	store  *store.Store
	cfg    Config
	client *river.Client[*sql.Tx]
	sender *webhook.Sender
	// slots bounds inference across all model queues to Concurrency: River's
	// MaxWorkers is per queue, and a GPU runs one batch at a time whatever
	// model it belongs to.
	slots chan struct{}

	mu        sync.Mutex
	started   bool
	stopLease func()
}

// New builds the queue on db. Nothing runs until Start.
func New(db *store.DB, cfg Config) (*Queue, error) {
	cfg = cfg.WithDefaults()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
		if db.Listens() {
			cfg.PollInterval = DefaultPostgresPollInterval
		}
	}
	if cfg.ClientID == "" {
		cfg.ClientID = newClientID()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := &Queue{db: db, store: db.Store(), cfg: cfg, sender: webhook.NewSender(cfg.Webhook),
		slots: make(chan struct{}, max(1, cfg.Concurrency))}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &inferenceWorker{q: q}); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := river.AddWorkerSafely(workers, newDeliveryWorker(q)); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &retentionWorker{q: q}); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	rc := &river.Config{
		Logger:            newRiverLogger(cfg.Logger),
		Workers:           workers,
		FetchPollInterval: cfg.PollInterval,
		FetchCooldown:     fetchCooldown(db, cfg.PollInterval),
		ID:                cfg.ClientID,
		Schema:            db.RiverSchema(),
		// Inference can run for many minutes on a CPU; River's stuck-job rescue
		// would start a second copy of a job that is still running. Jobs left by a
		// crash are made available at Start (SQLite) or through worker leases
		// (PostgreSQL) instead.
		RescueStuckJobsAfter: 24 * time.Hour,
		// Completed River jobs are only queue bookkeeping; the job record is ours.
		CompletedJobRetentionPeriod: time.Hour,
	}
	if cfg.Concurrency > 0 {
		rc.Queues = map[string]river.QueueConfig{
			store.DeliveryQueue: {
				MaxWorkers: deliveryWorkers,
				// SQLite has no LISTEN/NOTIFY: a new message waits for the next
				// poll. Polling this queue more often keeps completion-to-first-
				// attempt short (one cheap indexed query each), and a short
				// cooldown lets a backlog drain in quick batches. PostgreSQL
				// workers hear new messages through NOTIFY.
				FetchPollInterval: deliveryPoll(db, cfg.PollInterval),
				FetchCooldown:     deliveryFetchCooldown,
			},
			MaintenanceQueue: {MaxWorkers: 1},
		}
		for _, m := range cfg.Models {
			rc.Queues[InferenceQueueFor(m, db.SharedByWorkers())] = river.QueueConfig{MaxWorkers: cfg.Concurrency}
		}
		rc.PeriodicJobs = []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cfg.RetentionInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return RetentionArgs{}, &river.InsertOpts{Queue: MaintenanceQueue}
			}, &river.PeriodicJobOpts{RunOnStart: true})}
	}
	client, err := river.NewClient(db.RiverDriver(), rc)
	if err != nil {
		return nil, fmt.Errorf("queue: river client: %w", err)
	}
	q.client = client
	return q, nil
}

// Start starts working jobs (when Concurrency > 0), first making jobs that a
// previous process left running available again. ctx bounds the client's life:
// cancelling it stops the queue as Stop does.
func (q *Queue) Start(ctx context.Context) error {
	if q.cfg.Concurrency == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.started {
		return errors.New("queue: already started")
	}
	if q.db.SharedByWorkers() {
		// The lease exists before the client fetches anything, so no live
		// worker's job ever looks orphaned.
		stop, err := q.startLease(ctx)
		if err != nil {
			return err
		}
		q.stopLease = stop
	} else {
		n, err := q.db.ClaimWorker(ctx)
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		if n > 0 {
			q.cfg.Logger.InfoContext(ctx, "resuming jobs interrupted by a previous process", slog.Int("jobs", n))
		}
	}
	if err := q.client.Start(ctx); err != nil {
		if q.stopLease != nil {
			q.stopLease()
			q.stopLease = nil
		}
		return fmt.Errorf("queue: start: %w", err)
	}
	q.started = true
	return nil
}

// Stop stops fetching and waits for running jobs to finish until ctx ends; then it
// cancels them (they resume on the next start) and waits for them to return.
func (q *Queue) Stop(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.sender.Close()
	if !q.started {
		return nil
	}
	q.started = false
	if q.stopLease != nil {
		// After the client has stopped: a job still running keeps its lease.
		defer func() { q.stopLease(); q.stopLease = nil }()
	}
	err := q.client.Stop(ctx)
	if err == nil {
		return nil
	}
	if ctx.Err() == nil {
		return fmt.Errorf("queue: stop: %w", err)
	}
	// Out of patience: cancel the running jobs' contexts and wait (briefly) for
	// the workers to return, so no goroutine outlives the queue.
	hard, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := q.client.StopAndCancel(hard); err != nil {
		return fmt.Errorf("queue: stop and cancel: %w", err)
	}
	return nil
}

// fetchCooldown is River's minimum time between fetches of one queue. A worker
// with one slot takes one job per fetch, so River's 100 ms default caps it at ten
// jobs a second whatever the engine's speed, and on SQLite it would also hold
// back the fetch that an insert notification asks for (store/wake.go), adding up
// to a poll's wait to every job. 5 ms (10 ms on PostgreSQL, whose fetches share
// a pool) lifts both well above a GPU's rate; an idle queue still fetches only
// once per poll.
func fetchCooldown(db *store.DB, poll time.Duration) time.Duration {
	if db.Listens() {
		return min(10*time.Millisecond, poll)
	}
	return min(5*time.Millisecond, poll)
}

// deliveryPoll is the delivery queue's fetch poll interval: short on SQLite,
// where polling is how a new message is found; on PostgreSQL NOTIFY wakes the
// workers and polling is only the fallback, so it stays at poll.
func deliveryPoll(db *store.DB, poll time.Duration) time.Duration {
	if db.Listens() {
		return poll
	}
	return min(deliveryPollInterval, poll)
}

// Busy reports how many inference jobs are running now.
func (q *Queue) Busy() int { return len(q.slots) }
