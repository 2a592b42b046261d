package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/queue"
	"github.com/diffute/diffute/store"
)

// parseWorkerFlags reads `diffute worker`: serve's queue and engine without the
// public API, for GPU machines that share the API nodes' PostgreSQL.
func parseWorkerFlags(env *environment, args []string) (*serveConfig, error) {
	c := &serveConfig{workerOnly: true}
	fs := newFlagSet(env, "worker", "worker --database-url postgres://… [flags]")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:9090", "HOST:PORT for /healthz and /metrics (port 0 picks a free one)")
	c.state.register(fs, env)
	fs.StringVar(&c.publicURL, "public-url", "", "the API nodes' base URL, under which they serve disk media (required with disk media)")
	fs.IntVar(&c.workers, "concurrency", 1, "inference jobs run at once, across all models")
	fs.StringVar(&c.models, "models", "", "comma-separated models this worker serves, as serve --models; it takes no job for any other (default: the tiny models and every complete model in the Hugging Face cache)")
	c.registerWebhookFlags(fs)
	fs.DurationVar(&c.mediaTTL, "media-ttl", diffute.DefaultMediaTTL, "how long media URLs in webhooks stay valid")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long running jobs may take to finish before they are handed back")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format on stderr: json or text")
	fs.DurationVar(&c.leaseTTL, "lease-ttl", queue.DefaultLeaseTTL, "how long after this worker dies its running jobs go back to the queue; renewed every quarter of it")
	c.engine.register(fs)
	c.media.register(fs)
	registerTenancyFlags(fs, env, &c.tenancy, "media-retention", "retention-interval", "secret-key", "secret-key-file")
	if err := parseFlags(fs, env, args); err != nil {
		return nil, err
	}
	if err := c.tenancy.validate(); err != nil {
		return nil, err
	}
	if err := c.engine.checkChoices(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("worker: unexpected argument %q", fs.Arg(0))
	case !store.IsPostgresURL(c.state.databaseURL):
		return nil, errors.New("worker: --database-url postgres://… is required: workers share the API nodes' PostgreSQL (on one box, `diffute serve` runs its own workers)")
	case c.leaseTTL < time.Second:
		return nil, errors.New("worker: --lease-ttl must be 1s or more")
	case c.workers < 1:
		return nil, errors.New("worker: --concurrency must be 1 or more")
	case c.media.mediaURL == "" && c.publicURL == "":
		return nil, errors.New("worker: --public-url is required with disk media: the API nodes' URL, which serves the shared DATA_DIR/media (or store media in S3 with --media-url)")
	case c.logFormat != "json" && c.logFormat != "text":
		return nil, errors.New("worker: --log-format must be json or text")
	}
	if err := c.media.validate(env); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return c, nil
}

// registerTenancyFlags adds the named flags of serve's tenancy flags to fs. A
// worker takes the secret key (it signs webhooks with the secrets the API nodes
// sealed) and media retention (retention runs where workers run); quotas and
// rate limits belong to the API nodes.
func registerTenancyFlags(fs *flag.FlagSet, env *environment, t *tenancyFlags, names ...string) {
	all := flag.NewFlagSet("tenancy", flag.ContinueOnError)
	t.register(all, env)
	for _, name := range names {
		f := all.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}
}

func runWorker(ctx context.Context, env *environment, args []string) error {
	cfg, err := parseWorkerFlags(env, args)
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, env, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "diffute worker listening on %s\n", srv.listen)
	return srv.wait(ctx)
}

// workerHandler serves a worker's only HTTP: liveness with the database's
// answer, and its Prometheus metrics (diffute_jobs_running and
// diffute_inference_slots among them).
func (s *server) workerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.db.Store().Ping(r.Context()); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.Handle("GET /metrics", s.metrics)
	return mux
}
