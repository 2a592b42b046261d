// Package ortest finds ONNX Runtime for tests. Require initialises it for the
// tests of packages that run ONNX graphs without the engine (onnxgraph,
// tinymodel): once per test binary, from DIFFUTE_ORT_LIB or the repository's
// third_party/onnxruntime. CUDARuntime finds the 1.29 library with the CUDA
// provider, for tests that run it in a child process. Without the library a
// test is skipped locally and fails under CI=true.
package ortest

import (
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

var (
	once sync.Once
	err  error
	path string
)

// thirdParty is the repository's third_party folder.
func thirdParty() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "third_party")
}

// unavailable skips tb, or fails it under CI=true.
func unavailable(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// CUDARuntime returns the folder of ONNX Runtime 1.29 with its CUDA plugin
// provider (libonnxruntime.so, libonnxruntime_providers_cuda.so) as
// scripts/setup-ort.sh --cuda places it.
func CUDARuntime(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(thirdParty(), "onnxruntime-cuda")
	for _, f := range []string{"libonnxruntime.so", "libonnxruntime_providers_cuda.so"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			unavailable(tb, "ONNX Runtime 1.29 with the CUDA provider not present (run scripts/setup-ort.sh --cuda)")
		}
	}
	return dir
}

// Require initialises ONNX Runtime once, skipping tb when the library is absent
// (failing it instead under CI=true).
func Require(tb testing.TB) {
	tb.Helper()
	once.Do(func() {
		path = os.Getenv("DIFFUTE_ORT_LIB")
		if path == "" {
			path = filepath.Join(thirdParty(), "onnxruntime", "libonnxruntime.so.1")
		}
		if _, err = os.Stat(path); err != nil {
			return
		}
		ort.SetSharedLibraryPath(path)
		err = ort.InitializeEnvironment()
	})
	if err != nil {
		unavailable(tb, "ONNX Runtime library unavailable ("+path+"): "+err.Error()+"; run scripts/setup-ort.sh")
	}
}
