package onnx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute"

	"github.com/diffute/diffute/internal/syncbuf"
)

// newTestEngine returns an Engine whose model names are tiny model names.
func newTestEngine(t *testing.T, maxLoaded int) *Engine {
	t.Helper()
	requireORT(t)
	e, err := New(Config{
		MaxLoadedModels: maxLoaded,
		Resolve: func(_ context.Context, model string) (string, error) {
			if model != tinySD && model != tinySDXL {
				return "", os.ErrNotExist
			}
			return tinyModel(t, model), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestEngineGenerate(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, 2)
	var engine diffute.Engine = e
	req := baseRequest()
	req.Model = tinySD
	imgs, err := engine.Generate(context.Background(), req, nil)
	if err != nil || len(imgs) != 2 {
		t.Fatalf("%d images, %v", len(imgs), err)
	}
	want := generate(t, sharedPipeline(t, tinySD), req)
	if !samePixels(t, imgs[0], want[0]) {
		t.Error("the engine's image differs from the pipeline's")
	}
	req.Model = "no/such-model"
	if _, err := engine.Generate(context.Background(), req, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unknown model: err = %v", err)
	}
}

func TestEngineConcurrentLoadOnce(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, 2)
	const n = 4
	got := make([]*Pipeline, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := e.Load(context.Background(), tinySD)
			if err != nil {
				t.Error(err)
			}
			got[i] = p
		}()
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if got[i] != got[0] {
			t.Fatal("concurrent Loads of one model gave different pipelines")
		}
	}
}

func TestEngineLRUEviction(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t, 1)
	ctx := context.Background()
	a, err := e.Load(ctx, tinySD)
	if err != nil {
		t.Fatal(err)
	}
	req := baseRequest()
	req.Model = tinySD
	// While a generation runs on A, loading B evicts A; A must stay usable until
	// the generation ends, and be released then.
	var b *Pipeline
	evictedWhileRunning := false
	imgs, err := e.Generate(ctx, req, func(pr diffute.Progress) {
		if pr.Step != 1 {
			return
		}
		var err error
		if b, err = e.Load(ctx, tinySDXL); err != nil {
			t.Error(err)
		}
		evictedWhileRunning = !a.released()
	})
	if err != nil || len(imgs) != 2 {
		t.Fatalf("generation during eviction: %d images, %v", len(imgs), err)
	}
	if !evictedWhileRunning {
		t.Error("A was released while a generation used it")
	}
	if !a.released() {
		t.Error("evicted A was not released after its generation ended")
	}
	if got := e.Loaded(); len(got) != 1 || got[0] != tinySDXL {
		t.Errorf("loaded = %v, want [%s]", got, tinySDXL)
	}
	if _, err := a.Generate(ctx, req, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("closed pipeline: err = %v, want ErrClosed", err)
	}
	// Using A again through the engine reloads it and evicts B.
	if _, err := e.Generate(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	if !b.released() {
		t.Error("B was not released when A came back")
	}
	a2, err := e.Load(ctx, tinySD)
	if err != nil || a2 == a {
		t.Errorf("reloaded A: %p (old %p), %v", a2, a, err)
	}
	e.Close()
	if !a2.released() {
		t.Error("Close left a pipeline loaded")
	}
	if _, err := e.Load(ctx, tinySD); !errors.Is(err, ErrEngineClosed) {
		t.Errorf("after Close: err = %v", err)
	}
}

func TestEngineLogsWarnings(t *testing.T) {
	t.Parallel()
	requireORT(t)
	var buf syncBuffer
	e, err := New(Config{
		Logger:  slog.New(slog.NewTextHandler(&buf, nil)),
		Resolve: func(context.Context, string) (string, error) { return tinyModel(t, tinySD), nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	req := baseRequest()
	req.NumImages = 1
	req.Prompt = strings.Repeat("a very long prompt ", 40)
	if _, err := e.Generate(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "77 tokens") {
		t.Errorf("log = %q, want a warning about the truncated prompt", out)
	}
	// The load says how the model computes.
	if out := buf.String(); !strings.Contains(out, `msg="model loaded"`) || !strings.Contains(out, "unet_fp16=false") || !strings.Contains(out, "format=onnx") {
		t.Errorf("log = %q, want the model's load with its graph", out)
	}
}

func TestEngineConfig(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{Device: "gpu"}); err == nil || !strings.Contains(err.Error(), "cuda:N") {
		t.Errorf("bad device: err = %v", err)
	}
	if _, err := New(Config{Precision: "bf16"}); err == nil || !strings.Contains(err.Error(), `precision "bf16": want one of auto, fp32, fp16`) {
		t.Errorf("bad precision: err = %v", err)
	}
	c := Config{}.WithDefaults()
	if c.Device != "cpu" || c.MaxLoadedModels != 2 || c.MaxBatchBytes != DefaultMaxBatchBytes || c.Resolve == nil || c.Logger == nil || c.Precision != PrecisionAuto {
		t.Errorf("defaults: %+v", c)
	}
}

type syncBuffer = syncbuf.Buffer

func TestEngineLoadSurvivesAnotherCallersCancel(t *testing.T) {
	t.Parallel()
	requireORT(t)
	dir := tinyModel(t, tinySD)
	started := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	e, err := New(Config{Resolve: func(ctx context.Context, model string) (string, error) {
		first := false
		once.Do(func() { first = true })
		if first {
			close(started)
			<-release
			return "", ctx.Err()
		}
		return dir, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx1, cancel1 := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := e.Load(ctx1, tinySD)
		errc <- err
	}()
	<-started
	// A second caller waits on the first one's load, which then gets cancelled.
	got := make(chan *Pipeline, 1)
	go func() {
		p, err := e.Load(context.Background(), tinySD)
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		w := e.waiting
		e.mu.Unlock()
		if w == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second caller never waited on the first one's load")
		}
		runtime.Gosched()
	}
	cancel1()
	close(release)
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("first caller: err = %v, want context.Canceled", err)
	}
	if p := <-got; p == nil || p.Family() != SD {
		t.Errorf("second caller got %v", p)
	}
}

// TestDeviceMemoryError: ONNX Runtime's failure to allocate on a GPU (its
// BFC arena's message) is one line saying what is short and what to change.
func TestDeviceMemoryError(t *testing.T) {
	t.Parallel()
	oom := errors.New("onnx: run unet: Failed to allocate memory for requested buffer of size 5368709120\nstack trace follows")
	err := deviceMemoryError(oom)
	if !errors.Is(err, ErrDeviceMemory) || !strings.Contains(err.Error(), "--max-loaded-models") || strings.Contains(err.Error(), "\n") {
		t.Errorf("deviceMemoryError = %q", err)
	}
	if err := deviceMemoryError(errors.New("first\nsecond")); err.Error() != "first" {
		t.Errorf("other errors keep their first line: %q", err)
	}
	if err := deviceMemoryError(fmt.Errorf("load: %w\nmore", ErrCUDALibraryMissing)); !errors.Is(err, ErrCUDALibraryMissing) {
		t.Errorf("the first line of %q no longer unwraps to its cause", err)
	}
}

// TestWarmup runs the load-time warm-up a GPU engine does (one step at the
// model's native size) on the CPU: it must succeed on every family and leave
// the pipeline usable.
func TestWarmup(t *testing.T) {
	t.Parallel()
	for _, name := range []string{tinySD, tinySDXL} {
		p := sharedPipeline(t, name)
		if err := p.Warmup(context.Background()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		generate(t, p, baseRequest())
	}
}
