package onnx

import (
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/diffute/diffute/tinymodel"
	"go.uber.org/goleak"
)

// testRoot holds the tiny models, written once per test binary and shared by the
// tests (read-only); tests that alter a model copy it into their own t.TempDir().
var testRoot string

type cleanupMain struct{ m *testing.M }

func (c cleanupMain) Run() int {
	code := c.m.Run()
	os.RemoveAll(testRoot)
	return code
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "diffute-onnx-test-")
	if err != nil {
		panic(err)
	}
	testRoot = dir
	goleak.VerifyTestMain(cleanupMain{m})
}

// requireORT initialises ONNX Runtime for the test, or skips it when the library is
// absent (fails instead under CI=true).
func requireORT(t testing.TB) {
	t.Helper()
	path, err := FindLibrary("", os.Getenv)
	if err == nil {
		err = InitRuntime(path)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ONNX Runtime is required under CI=true: %v", err)
		}
		t.Skipf("ONNX Runtime not available (run scripts/setup-ort.sh): %v", err)
	}
}

type tinyResult struct {
	once sync.Once
	dir  string
	err  error
}

var tinyModels sync.Map // name → *tinyResult

// tinyModel returns the folder of the tiny model name ("diffute/tiny-sd", …; the
// suffix "+fp16" asks for the fp16 variant, "+scalar" for a float rank-0 timestep), writing it on first use.
func tinyModel(t testing.TB, name string) string {
	t.Helper()
	requireORT(t)
	v, _ := tinyModels.LoadOrStore(name, &tinyResult{})
	r := v.(*tinyResult)
	r.once.Do(func() {
		base, opts := name, tinymodel.WriteOptions{ONNX: true}
		if n, ok := strings.CutSuffix(base, "+diffusers"); ok {
			base, opts.ONNX = n, false
		}
		if n, ok := strings.CutSuffix(base, "+fp16"); ok {
			base, opts.FP16 = n, true
		}
		if n, ok := strings.CutSuffix(base, "+scalar"); ok {
			base, opts.TimestepFloatScalar = n, true
		}
		r.dir = filepath.Join(testRoot, filepath.FromSlash(name))
		r.err = tinymodel.WriteWith(r.dir, base, opts)
	})
	if r.err != nil {
		t.Fatalf("write tiny model %s: %v", name, r.err)
	}
	return r.dir
}

var pipelines sync.Map // name → *Pipeline, loaded once and shared by read-only tests

type pipeResult struct {
	once sync.Once
	p    *Pipeline
	err  error
}

// sharedPipeline returns a pipeline of the tiny model name shared by the tests
// (never closed: sessions die with the process).
func sharedPipeline(t testing.TB, name string) *Pipeline {
	t.Helper()
	dir := tinyModel(t, name)
	v, _ := pipelines.LoadOrStore(name, &pipeResult{})
	r := v.(*pipeResult)
	r.once.Do(func() { r.p, r.err = LoadPipeline(dir) })
	if r.err != nil {
		t.Fatalf("load %s: %v", name, r.err)
	}
	return r.p
}

// copyDir copies the model folder src into a new folder under t.TempDir().
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "model")
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func pixels(t testing.TB, img image.Image) []uint8 {
	t.Helper()
	n, ok := img.(*image.NRGBA)
	if !ok {
		t.Fatalf("image is %T, want *image.NRGBA", img)
	}
	return n.Pix
}

func samePixels(t testing.TB, a, b image.Image) bool {
	t.Helper()
	pa, pb := pixels(t, a), pixels(t, b)
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		if pa[i] != pb[i] {
			return false
		}
	}
	return true
}
