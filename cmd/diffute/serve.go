package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
	"github.com/diffute/diffute/media"
	"github.com/diffute/diffute/metrics"
	"github.com/diffute/diffute/onnx"
	"github.com/diffute/diffute/queue"
	"github.com/diffute/diffute/store"
	"github.com/diffute/diffute/webhook"
	"github.com/diffute/diffute/webui"
)

// serveConfig is serve's configuration, read from flags and DIFFUTE_… variables.
type serveConfig struct {
	addr                string
	state               stateFlags
	publicURL           string
	workers             int
	models              string
	webhookAllowPrivate bool
	webhookTimeout      time.Duration
	webhookRetries      string
	webhookAllowCIDRs   string
	mediaTTL            time.Duration
	shutdownTimeout     time.Duration
	logFormat           string
	engine              engineFlags
	tenancy             tenancyFlags
	media               mediaFlags
	httpReadTimeout     time.Duration
	httpIdleTimeout     time.Duration
	maxConnsPerClient   int
	workerOnly          bool          // diffute worker: no public API, only /healthz and /metrics
	leaseTTL            time.Duration // worker lease on PostgreSQL; 0: queue.DefaultLeaseTTL
}

func parseServeFlags(env *environment, args []string) (*serveConfig, error) {
	c, fs := serveFlags(env)
	if err := parseFlags(fs, env, args); err != nil {
		return nil, err
	}
	return c.check(env, fs)
}

// registerWebhookFlags defines the webhook delivery flags that serve and worker
// share (both run delivery workers).
func (c *serveConfig) registerWebhookFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.webhookAllowPrivate, "webhook-allow-private", false, "allow webhooks to loopback and private addresses (development only)")
	fs.DurationVar(&c.webhookTimeout, "webhook-timeout", 15*time.Second, "timeout of one webhook attempt")
	fs.StringVar(&c.webhookAllowCIDRs, "webhook-allow-cidr", "", "comma-separated internal CIDRs webhooks may reach (e.g. 10.1.0.0/16)")
	fs.StringVar(&c.webhookRetries, "webhook-retry-schedule", "", "comma-separated delays between webhook attempts (default 0s,5s,5m,30m,2h,5h,10h,10h)")
}

// serveFlags defines serve's flags; docs/configuration.md is generated from them
// (diffute config-doc).
func serveFlags(env *environment) (*serveConfig, *flag.FlagSet) {
	c := &serveConfig{}
	fs := newFlagSet(env, "serve", "serve [flags]")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "HOST:PORT to listen on (port 0 picks a free one)")
	c.state.register(fs, env)
	fs.StringVar(&c.publicURL, "public-url", "", "base URL clients reach this server at, used in media URLs (default: http://ADDR)")
	fs.IntVar(&c.workers, "workers", 1, "inference jobs run at once by this process (0: API only, no engine)")
	fs.StringVar(&c.models, "models", "", "comma-separated models this deployment serves: Hub repos (diffusers or ONNX layout), local folders, .safetensors checkpoints, NAME=MODEL to serve MODEL under NAME (default: the tiny models and every complete model in the Hugging Face cache)")
	c.registerWebhookFlags(fs)
	fs.DurationVar(&c.mediaTTL, "media-ttl", diffute.DefaultMediaTTL, "how long media URLs stay valid")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long running jobs may take to finish")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format on stderr: json or text")
	fs.DurationVar(&c.httpReadTimeout, "http-read-timeout", 60*time.Second, "how long a client may take to send a whole request, body included (events streams, once open, are not bound by it)")
	fs.DurationVar(&c.httpIdleTimeout, "http-idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	fs.IntVar(&c.maxConnsPerClient, "max-conns-per-client", 256, "connections one client address may hold open at once (0: no limit)")
	c.engine.register(fs)
	c.tenancy.register(fs, env)
	c.media.register(fs)
	fs.Usage = func() { groupedUsage(env.stderr, fs, "serve [flags]") }
	return c, fs
}

func (c *serveConfig) check(env *environment, fs *flag.FlagSet) (*serveConfig, error) {
	if err := c.tenancy.validate(); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if c.workers < 0 {
		return nil, errors.New("serve: --workers must be 0 or more")
	}
	if err := c.engine.checkChoices(); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if c.logFormat != "json" && c.logFormat != "text" {
		return nil, errors.New("serve: --log-format must be json or text")
	}
	if c.httpReadTimeout <= 0 || c.httpIdleTimeout <= 0 || c.maxConnsPerClient < 0 {
		return nil, errors.New("serve: --http-read-timeout and --http-idle-timeout must be positive, --max-conns-per-client 0 or more")
	}
	if err := c.media.validate(env); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return c, nil
}

func parseDurations(s string) ([]time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("--webhook-retry-schedule: %q is not a duration like 5s or 2h", part)
		}
		out = append(out, d)
	}
	return out, nil
}

func runServe(ctx context.Context, env *environment, args []string) error {
	cfg, err := parseServeFlags(env, args)
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, env, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "diffute listening on %s\n", srv.url)
	return srv.wait(ctx)
}

// server is a started serve: HTTP listener, queue, engine and database.
type server struct {
	url     string
	listen  string // where this process listens (url may be the balancer's)
	cfg     *serveConfig
	logger  *slog.Logger
	db      *store.DB
	engine  *onnx.Engine
	metrics *metrics.Metrics
	media   closableMedia
	queue   *queue.Queue
	http    *http.Server
	errc    chan error
	models  []string
	dataDir string
}

// newLogger logs to stderr in format (json or text), adding the request id to
// every line logged with a request's context.
func newLogger(env *environment, format string) *slog.Logger {
	var h slog.Handler = slog.NewJSONHandler(env.stderr, nil)
	if format == "text" {
		h = slog.NewTextHandler(env.stderr, nil)
	}
	return slog.New(httpapi.RequestIDHandler(h))
}

// startServer opens everything serve needs and starts listening. Only this function
// knows which adapters back the service.
func startServer(ctx context.Context, env *environment, cfg *serveConfig) (_ *server, err error) {
	s := &server{cfg: cfg, logger: newLogger(env, cfg.logFormat), dataDir: cfg.state.dataDir, errc: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	retries, err := parseDurations(cfg.webhookRetries)
	if err != nil {
		return nil, err
	}
	allowCIDRs, err := parseCIDRs(cfg.webhookAllowCIDRs)
	if err != nil {
		return nil, err
	}
	src, err := newModelSource(env.getenv)
	if err != nil {
		return nil, err
	}
	if s.models, err = src.served(cfg.models); err != nil {
		return nil, err
	}
	for _, problem := range src.unavailable {
		s.logger.Warn("model not found", "problem", problem)
	}
	policy, err := cfg.tenancy.policy()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("serve: --addr %s: %w", cfg.addr, err)
	}
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	s.listen = "http://" + ln.Addr().String()
	s.url = cfg.publicURL
	if s.url == "" {
		s.url = "http://" + ln.Addr().String()
	}
	s.url = strings.TrimRight(s.url, "/")
	webhookCfg := webhook.Config{
		AllowPrivate:  cfg.webhookAllowPrivate,
		AllowCIDRs:    allowCIDRs,
		Timeout:       cfg.webhookTimeout,
		RetrySchedule: retries,
	}
	o, err := openState(ctx, env, openSpec{
		state: &cfg.state, secrets: &cfg.tenancy, media: &cfg.media, baseURL: s.url,
		mediaTTL: cfg.mediaTTL, mediaRetention: cfg.tenancy.mediaRetention,
		deliveryMaxAttempts: webhookCfg.WithDefaults().MaxAttempts(),
	})
	if err != nil {
		if errors.Is(err, store.ErrSecretKeyMismatch) {
			return nil, fmt.Errorf("serve: %w", err)
		}
		return nil, err
	}
	s.db, s.media = o.db, o.media
	disk, signer := o.media, o.signer
	var eng diffute.Engine
	if cfg.workers > 0 {
		if s.engine, err = cfg.engine.open(src, s.logger); err != nil {
			return nil, err
		}
		eng = s.engine
	}
	build := buildInfo(cfg.engine.device, s.engine)
	mets := newMetrics(s.db, s.engine, build, s.models, cfg.workers, func() int {
		if q := s.queue; q != nil {
			return q.Busy()
		}
		return 0
	})
	s.metrics = mets
	if eng != nil {
		eng = &metrics.Engine{Engine: eng, Metrics: mets}
	}
	observe, jobEnds := observeJob(mets), &httpapi.JobEnds{}
	s.queue, err = queue.New(s.db, queue.Config{
		Engine:      eng,
		Media:       disk,
		Concurrency: cfg.workers,
		Models:      s.models,
		LeaseTTL:    cfg.leaseTTL,
		// Retention runs where workers run; an API-only node deletes nothing.
		MediaRetention:    cfg.tenancy.mediaRetention,
		RetentionInterval: cfg.tenancy.retentionInterval,
		Sweeper:           sweeper(o.sweeper),
		Webhook:           webhookCfg,
		Logger:            s.logger,
		Observer:          mets,
		OnFinish: func(job *diffute.Job) {
			observe(job)
			jobEnds.Ended(job.ID) // a PUT waiting on it (Prefer: wait) answers now
		},
	})
	if err != nil {
		return nil, err
	}
	if err := s.queue.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	api := &httpapi.Server{
		Store:    s.db.Store(),
		Keys:     s.db.Store(),
		Media:    disk,
		Signer:   signer,
		Webhooks: s.db.Store(),
		Models:   s.models,
		Catalog:  newModelCatalog(src),
		JobEnds:  jobEnds,
		Limits:   diffute.DefaultLimits,
		MediaTTL: cfg.mediaTTL,
		Tenancy:  s.db.Store(),
		Policy:   policy,
		// expires_at in status and manifest
		MediaRetention: cfg.tenancy.mediaRetention,
		Ready: func(ctx context.Context) error {
			if err := s.db.Store().Ping(ctx); err != nil {
				return diffute.Errorf(diffute.EUNAVAILABLE, "database: %v", err)
			}
			return nil
		},
		Logger:      s.logger,
		Metrics:     mets,
		Instruments: mets,
		Console:     webui.Handler(),
	}
	if err := api.Check(); err != nil {
		return nil, err
	}
	handler := api.Handler()
	if cfg.workerOnly {
		handler = s.workerHandler()
	}
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: cmp.Or(cfg.httpReadTimeout, 60*time.Second), IdleTimeout: cmp.Or(cfg.httpIdleTimeout, 120*time.Second),
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)}
	s.http.RegisterOnShutdown(api.CloseStreams)
	go func() { s.errc <- s.http.Serve(httpapi.LimitConnsPerClient(ln, cfg.maxConnsPerClient)) }()
	s.logger.Info("serving", "url", s.url, "workers", cfg.workers, "models", strings.Join(s.models, ","), "data_dir", cfg.state.dataDir,
		"version", build.Version, "commit", build.Commit, "go_version", build.GoVersion,
		"device", build.Device, "onnxruntime_version", build.ONNXRuntimeVersion)
	return s, nil
}

// wait serves until ctx ends, then shuts down in order: stop taking requests, let
// running jobs finish within the shutdown timeout, close the engine and database.
func (s *server) wait(ctx context.Context) error {
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-s.errc:
	}
	s.logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.shutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil && serveErr == nil {
		serveErr = err
	}
	if s.queue != nil {
		if err := s.queue.Stop(shutdownCtx); err != nil {
			s.logger.Warn("queue stop", "error", err)
		}
		s.queue = nil
	}
	s.close()
	if errors.Is(serveErr, http.ErrServerClosed) {
		return nil
	}
	return serveErr
}

func (s *server) close() {
	if s.queue != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.queue.Stop(ctx) // closing after a failed start: the start's error is the one to report
		cancel()
	}
	if s.engine != nil {
		s.engine.Close()
	}
	if s.media != nil {
		s.media.Close()
	}
	if s.db != nil {
		s.db.Close()
	}
}

// sweeper is d as a queue.MediaSweeper, nil when d is (S3 leaves nothing behind).
func sweeper(d *media.Disk) queue.MediaSweeper {
	if d == nil {
		return nil
	}
	return d
}

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	return nil
}
