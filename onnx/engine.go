package onnx

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/diffute/diffute"
)

// Config configures an Engine. The zero value of each field is a usable default.
type Config struct {
	// LibraryPath is the libonnxruntime shared library ("": FindLibrary with the
	// process environment).
	LibraryPath string
	// Device is "cpu" (the default) or "cuda:N".
	Device string
	// IntraOpThreads and InterOpThreads are ONNX Runtime's thread counts (0: its
	// default).
	IntraOpThreads, InterOpThreads int
	// MaxLoadedModels bounds the pipelines kept loaded (LRU); default 2.
	MaxLoadedModels int
	// MaxBatchBytes is the estimated memory one UNet call may use; it decides how many
	// images of a request share a call. Default DefaultMaxBatchBytes.
	MaxBatchBytes int64
	// Resolve maps a model name to its folder (a hub download, a local path).
	// nil: the name is the folder.
	Resolve func(ctx context.Context, model string) (dir string, err error)
	// Logger receives warnings of generations (truncated prompts) from Generate;
	// nil discards them.
	Logger *slog.Logger
	// RNG is the noise generator of requests that name none: diffute.RNGTorch
	// (the default) or diffute.RNGCUDA.
	RNG string
	// Precision is the UNet's compute type in built graphs: PrecisionAuto (the
	// default: float16 on CUDA, float32 on the CPU), PrecisionFP16 or
	// PrecisionFP32 (see WithPrecision).
	Precision string
	// Unfused builds graphs of standard operators only (WithFusedOperators(false)).
	Unfused bool
	// CUDAOptions are CUDA execution provider options (WithCUDAOptions).
	CUDAOptions map[string]string
	// BatchRequests lets concurrent requests of one model share UNet batches,
	// a batch waiting BatchWait for more (WithRequestBatching). Off by default.
	BatchRequests bool
	BatchWait     time.Duration
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Device == "" {
		c.Device = "cpu"
	}
	if c.MaxLoadedModels <= 0 {
		c.MaxLoadedModels = 2
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.Resolve == nil {
		c.Resolve = func(_ context.Context, model string) (string, error) { return model, nil }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RNG == "" {
		c.RNG = diffute.RNGTorch
	}
	if c.Precision == "" {
		c.Precision = PrecisionAuto
	}
	return c
}

// Validate checks c (after WithDefaults).
func (c Config) Validate() error {
	if _, err := parseDevice(c.Device); err != nil {
		return err
	}
	if c.IntraOpThreads < 0 || c.InterOpThreads < 0 {
		return fmt.Errorf("onnx: thread counts must not be negative")
	}
	if _, err := newNoiseRNG(c.RNG, 0); err != nil {
		return fmt.Errorf("onnx: rng %q: want one of %s", c.RNG, strings.Join(diffute.RNGNames, ", "))
	}
	if !slices.Contains(Precisions, c.Precision) {
		return fmt.Errorf("onnx: precision %q: want one of %s", c.Precision, strings.Join(Precisions, ", "))
	}
	return nil
}

// Engine generates images with cached pipelines. It implements diffute.Engine and is
// safe for concurrent use: generations on the same model share its sessions.
type Engine struct {
	cfg  Config
	opts []Option

	batchStats *BatchStats // Config.BatchRequests

	mu      sync.Mutex
	lru     *list.List // of *cacheEntry, most recently used first
	entries map[string]*cacheEntry
	closed  bool
	waiting int // callers waiting on another caller's load (observed by tests)
}

var _ diffute.Engine = (*Engine)(nil)

// cacheEntry is a loaded (or loading) pipeline. ready is closed when loading ends;
// then p or err is set.
type cacheEntry struct {
	model string
	ready chan struct{}
	p     *Pipeline
	err   error
	elem  *list.Element
}

// New initialises the ONNX Runtime environment (once per process) and returns an
// Engine. A CUDA device is checked here, so a CPU-only library fails at start.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := InitRuntime(cfg.LibraryPath); err != nil {
		return nil, err
	}
	sc := sessionConfig{device: cfg.Device, intra: cfg.IntraOpThreads, inter: cfg.InterOpThreads, cuda: cfg.CUDAOptions}
	so, err := sc.newSessionOptions()
	if err != nil {
		return nil, err
	}
	_ = so.Destroy()
	e := &Engine{
		cfg: cfg,
		opts: []Option{
			WithDevice(cfg.Device),
			WithThreads(cfg.IntraOpThreads, cfg.InterOpThreads),
			WithMaxBatchBytes(cfg.MaxBatchBytes),
			WithPrecision(cfg.Precision),
			WithFusedOperators(!cfg.Unfused),
			WithCUDAOptions(cfg.CUDAOptions),
		},
		lru:     list.New(),
		entries: make(map[string]*cacheEntry),
	}
	if cfg.BatchRequests {
		e.batchStats = &BatchStats{}
		e.opts = append(e.opts, WithRequestBatching(cfg.BatchWait), func(o *pipelineOptions) { o.batchStats = e.batchStats })
	}
	return e, nil
}

// BatchStats counts the UNet batches of the engine's pipelines since it
// started; nil unless Config.BatchRequests.
func (e *Engine) BatchStats() *BatchStats { return e.batchStats }

// ErrEngineClosed is returned by an Engine after Close.
var ErrEngineClosed = errors.New("onnx: engine is closed")

// Load returns the pipeline of model, loading it on first use. Concurrent Loads of
// one model load it once. Loading a model beyond MaxLoadedModels evicts the least
// recently used one; an evicted pipeline is closed once no generation uses it.
func (e *Engine) Load(ctx context.Context, model string) (*Pipeline, error) {
	for {
		p, err := e.loadOnce(ctx, model)
		// A load started by a caller that gave up fails with that caller's context
		// error; a waiter whose own context is alive starts the load again.
		if err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		return p, err
	}
}

func (e *Engine) loadOnce(ctx context.Context, model string) (*Pipeline, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrEngineClosed
	}
	if ent, ok := e.entries[model]; ok {
		e.lru.MoveToFront(ent.elem)
		e.waiting++
		e.mu.Unlock()
		var err error
		select {
		case <-ent.ready:
		case <-ctx.Done():
			err = ctx.Err()
		}
		e.mu.Lock()
		e.waiting--
		e.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if ent.err != nil {
			return nil, ent.err
		}
		return ent.p, nil
	}
	ent := &cacheEntry{model: model, ready: make(chan struct{})}
	ent.elem = e.lru.PushFront(ent)
	e.entries[model] = ent
	e.mu.Unlock()

	p, err := e.load(ctx, model)

	e.mu.Lock()
	ent.p, ent.err = p, err
	close(ent.ready)
	var evict []*Pipeline
	if err != nil || e.closed {
		// Failures are not cached: the next request tries again.
		if e.entries[model] == ent {
			delete(e.entries, model)
			e.lru.Remove(ent.elem)
		}
		if err == nil {
			evict = append(evict, p)
			err = ErrEngineClosed
		}
	} else {
		evict = e.evictLocked()
	}
	e.mu.Unlock()
	for _, old := range evict {
		old.Close()
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (e *Engine) load(ctx context.Context, model string) (*Pipeline, error) {
	dir, err := e.cfg.Resolve(ctx, model)
	if err != nil {
		return nil, fmt.Errorf("onnx: resolve model %q: %w", model, err)
	}
	start := time.Now()
	dev, _ := parseDevice(e.cfg.Device)
	p, err := LoadPipeline(dir, e.opts...)
	if err != nil {
		if dev >= 0 {
			// Copying the weights to the GPU at session creation fails first
			// when they do not fit.
			err = deviceMemoryError(err)
		}
		return nil, fmt.Errorf("onnx: load model %q: %w", model, err)
	}
	if dev >= 0 {
		// On a GPU the first run at a shape searches cuDNN's convolution
		// algorithms and grows the memory arena: a one-step generation at the
		// model's native size does it at load, not in the first job, and a GPU
		// without the memory for the model fails here, naming the model.
		if err := p.Warmup(ctx); err != nil {
			_ = p.Close()
			return nil, fmt.Errorf("onnx: load model %q: warm-up on %s: %w", model, e.cfg.Device, deviceMemoryError(err))
		}
	}
	// How the model computes, once per load: what an operator checks first
	// when a GPU is slower than expected.
	g := p.Graph()
	e.cfg.Logger.InfoContext(ctx, "model loaded", "model", model, "device", e.cfg.Device, "format", g.Format,
		"unet_fp16", g.UNetFloat16, "fused_attention", g.Fused, "cuda_kernels", g.CUDAKernels,
		"batch_requests", p.batcher != nil, "load_s", time.Since(start).Seconds())
	if g.KernelsMissing != "" {
		e.cfg.Logger.WarnContext(ctx, "the CUDA provider lacks the fused kernels; the model runs with standard operators",
			"model", model, "error", g.KernelsMissing)
	}
	return p, nil
}

// ErrDeviceMemory is a GPU that has not the free memory a model needs.
var ErrDeviceMemory = errors.New("not enough free GPU memory")

// deviceMemoryError turns ONNX Runtime's allocation failure on a GPU into one
// line that says so and what to change; other errors show their first line.
func deviceMemoryError(err error) error {
	msg := strings.ToLower(err.Error())
	if strings.Contains(msg, "out of memory") || strings.Contains(msg, "failed to allocate") || strings.Contains(msg, "memoryallocation") {
		return fmt.Errorf("%w for this model (%s): unload other models (--max-loaded-models), lower --max-batch-bytes, or use a GPU with more memory",
			ErrDeviceMemory, firstLine(err.Error()))
	}
	if firstLine(err.Error()) != err.Error() {
		return firstLineError{err}
	}
	return err
}

// firstLineError shows the first line of a multi-line error and still unwraps
// to it, so errors.Is sees the sentinels inside.
type firstLineError struct{ err error }

func (e firstLineError) Error() string { return firstLine(e.err.Error()) }
func (e firstLineError) Unwrap() error { return e.err }

// evictLocked drops loaded pipelines beyond MaxLoadedModels, least recently used
// first, and returns them for closing outside the lock. Pipelines still loading
// are not counted.
func (e *Engine) evictLocked() []*Pipeline {
	loaded := 0
	var out []*Pipeline
	for el := e.lru.Front(); el != nil; {
		next := el.Next()
		ent := el.Value.(*cacheEntry)
		if ent.p != nil {
			loaded++
			if loaded > e.cfg.MaxLoadedModels {
				e.lru.Remove(el)
				delete(e.entries, ent.model)
				out = append(out, ent.p)
			}
		}
		el = next
	}
	return out
}

// Run generates with the model's pipeline and returns the warnings too.
func (e *Engine) Run(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress)) (Result, error) {
	if req.RNG == "" {
		req.RNG = e.cfg.RNG
	}
	// A pipeline can be evicted between Load and its use; then load it again.
	for attempt := 0; ; attempt++ {
		p, err := e.Load(ctx, req.Model)
		if err != nil {
			return Result{}, err
		}
		res, err := p.Run(ctx, req, progress)
		if errors.Is(err, ErrClosed) && attempt < 3 {
			continue
		}
		return res, err
	}
}

// Generate implements diffute.Engine. Warnings (truncated prompts) go to the
// configured Logger.
func (e *Engine) Generate(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress)) ([]image.Image, error) {
	res, err := e.Run(ctx, req, progress)
	for _, w := range res.Warnings {
		e.cfg.Logger.WarnContext(ctx, "generation warning", "model", req.Model, "warning", w)
	}
	return res.Images, err
}

// Loaded returns the names of the loaded models, most recently used first.
func (e *Engine) Loaded() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for el := e.lru.Front(); el != nil; el = el.Next() {
		if ent := el.Value.(*cacheEntry); ent.p != nil {
			names = append(names, ent.model)
		}
	}
	return names
}

// Close closes every cached pipeline (each when its running generations end) and
// makes later calls fail. The ONNX Runtime environment stays: it is process-wide.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	var ps []*Pipeline
	for _, ent := range e.entries {
		if ent.p != nil {
			ps = append(ps, ent.p)
		}
	}
	e.entries = map[string]*cacheEntry{}
	e.lru.Init()
	e.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
	return nil
}
