// Package ortest initialises ONNX Runtime for the tests of packages that run ONNX
// graphs without the engine (onnxgraph, tinymodel): once per test binary, from
// DIFFUTE_ORT_LIB or the repository's third_party/onnxruntime. Without the library
// a test is skipped locally and fails under CI=true.
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

// Require initialises ONNX Runtime once, skipping tb when the library is absent
// (failing it instead under CI=true).
func Require(tb testing.TB) {
	tb.Helper()
	once.Do(func() {
		path = os.Getenv("DIFFUTE_ORT_LIB")
		if path == "" {
			_, file, _, _ := runtime.Caller(0)
			path = filepath.Join(filepath.Dir(file), "..", "..", "third_party", "onnxruntime", "libonnxruntime.so.1")
		}
		if _, err = os.Stat(path); err != nil {
			return
		}
		ort.SetSharedLibraryPath(path)
		err = ort.InitializeEnvironment()
	})
	if err != nil {
		msg := "ONNX Runtime library unavailable (" + path + "): " + err.Error() + "; run scripts/setup-ort.sh"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
}
