package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// LibraryEnv is the environment variable that names the ONNX Runtime shared library.
const LibraryEnv = "DIFFUTE_ORT_LIB"

// ErrLibraryNotFound is returned by FindLibrary when no ONNX Runtime library is found.
// Its message is one line that tells an operator what to do.
var ErrLibraryNotFound = errors.New("ONNX Runtime library not found; run scripts/setup-ort.sh or set --ort-lib / DIFFUTE_ORT_LIB")

// libraryNames are the file names looked for in each candidate folder, the versioned
// soname first because that is what setup-ort.sh installs.
var libraryNames = []string{"libonnxruntime.so.1", "libonnxruntime.so"}

// systemLibraryDirs are searched after the project's own locations.
var systemLibraryDirs = []string{"/usr/lib", "/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64"}

// FindLibrary resolves the ONNX Runtime shared library, in this order: flag (the
// --ort-lib value), the environment variable DIFFUTE_ORT_LIB, next to the running
// executable, third_party/onnxruntime/libonnxruntime.so.1 under the current directory
// and each of its parents, then the system folders (/usr/lib, /usr/local/lib, …) and
// the folders of LD_LIBRARY_PATH. A flag or variable that names a missing file is an
// error rather than a reason to look elsewhere: the operator asked for that file.
func FindLibrary(flag string, getenv func(string) string) (string, error) {
	exeDir := ""
	if exe, err := os.Executable(); err == nil {
		exeDir = filepath.Dir(exe)
	}
	cwd, _ := os.Getwd()
	return findLibrary(flag, getenv, exeDir, cwd, systemLibraryDirs)
}

func findLibrary(flag string, getenv func(string) string, exeDir, cwd string, sysDirs []string) (string, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	for _, explicit := range []struct{ value, source string }{
		{flag, "--ort-lib"},
		{getenv(LibraryEnv), LibraryEnv},
	} {
		if explicit.value == "" {
			continue
		}
		if isFile(explicit.value) {
			return explicit.value, nil
		}
		return "", fmt.Errorf("ONNX Runtime library %q (from %s) not found; run scripts/setup-ort.sh or set --ort-lib / DIFFUTE_ORT_LIB", explicit.value, explicit.source)
	}
	if exeDir != "" {
		if p, ok := findIn(exeDir); ok {
			return p, nil
		}
	}
	if cwd != "" {
		for dir := cwd; ; {
			p := filepath.Join(dir, "third_party", "onnxruntime", "libonnxruntime.so.1")
			if isFile(p) {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	dirs := append([]string(nil), sysDirs...)
	for _, d := range filepath.SplitList(getenv("LD_LIBRARY_PATH")) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if p, ok := findIn(d); ok {
			return p, nil
		}
	}
	return "", ErrLibraryNotFound
}

func findIn(dir string) (string, bool) {
	for _, name := range libraryNames {
		p := filepath.Join(dir, name)
		if isFile(p) {
			return p, true
		}
	}
	return "", false
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// runtimeState guards the process-wide ONNX Runtime environment: onnxruntime_go
// keeps it in package globals, so it can be initialised once per process only.
var runtimeState struct {
	mu   sync.Mutex
	path string
}

// InitRuntime initialises the process-wide ONNX Runtime environment from the
// shared library at path ("" resolves it with FindLibrary and the process
// environment). Calling it again with the same library (or "") is a no-op; naming a
// different library once initialised is an error.
func InitRuntime(path string) error {
	runtimeState.mu.Lock()
	defer runtimeState.mu.Unlock()
	if runtimeState.path != "" {
		if path != "" && path != runtimeState.path {
			return fmt.Errorf("onnx: ONNX Runtime already initialised from %s; cannot switch to %s in the same process", runtimeState.path, path)
		}
		return nil
	}
	if path == "" {
		p, err := FindLibrary("", os.Getenv)
		if err != nil {
			return err
		}
		path = p
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("onnx: initialise ONNX Runtime from %s: %w", path, err)
	}
	runtimeState.path = path
	return nil
}

// RuntimeVersion returns the version string of the initialised ONNX Runtime library.
func RuntimeVersion() string { return ort.GetVersion() }

// ErrNoCUDA is returned when a CUDA device is asked for but the ONNX Runtime library
// was built without the CUDA execution provider (the default CPU build).
var ErrNoCUDA = errors.New("this ONNX Runtime build has no CUDA execution provider")

// sessionConfig is what every session of a pipeline is created with.
type sessionConfig struct {
	device       string // "cpu" or "cuda:N"
	intra, inter int
	cuda         map[string]string // CUDA provider options (WithCUDAOptions)
}

// parseDevice returns the CUDA device id of "cuda:N" (or "cuda", device 0), and -1
// for the CPU.
func parseDevice(device string) (int, error) {
	switch d := strings.ToLower(strings.TrimSpace(device)); {
	case d == "" || d == "cpu":
		return -1, nil
	case d == "cuda":
		return 0, nil
	case strings.HasPrefix(d, "cuda:"):
		n, err := strconv.Atoi(d[len("cuda:"):])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("onnx: device %q: want cpu or cuda:N", device)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("onnx: device %q: want cpu or cuda:N", device)
	}
}

// newSessionOptions builds the options for one session. The caller destroys them.
func (c sessionConfig) newSessionOptions() (*ort.SessionOptions, error) {
	dev, err := parseDevice(c.device)
	if err != nil {
		return nil, err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = so.Destroy()
		}
	}()
	if c.intra > 0 {
		if err := so.SetIntraOpNumThreads(c.intra); err != nil {
			return nil, fmt.Errorf("onnx: intra-op threads: %w", err)
		}
	}
	if c.inter > 0 {
		if err := so.SetInterOpNumThreads(c.inter); err != nil {
			return nil, fmt.Errorf("onnx: inter-op threads: %w", err)
		}
	}
	// The intra-op pool's threads sleep between ops instead of spinning: the
	// engine shares the cores with the HTTP server, the database and image
	// encoding, and spinning threads starve them (and each other when sessions
	// run at once). Measured on 2 cores, it is faster too: tiny-sd 512² 20
	// steps 75 ms against 104 ms spinning (docs/benchmarks.md).
	if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return nil, fmt.Errorf("onnx: session options: %w", err)
	}
	if dev >= 0 {
		if err := appendCUDA(so, dev, c.cuda); err != nil {
			return nil, err
		}
	}
	ok = true
	return so, nil
}

// appendCUDA enables the CUDA execution provider on device dev. The CPU build of
// ONNX Runtime fails at the first call into the CUDA provider; that failure is
// reported as ErrNoCUDA so an operator knows to install the GPU build rather than
// to look for a driver problem.
//
// The plugin provider (ONNX Runtime 1.29's libonnxruntime_providers_cuda.so
// beside the core library, see LoadCUDAProvider) is used when present; otherwise
// the classic, built-in provider of a GPU build is asked for.
func appendCUDA(so *ort.SessionOptions, dev int, opts map[string]string) error {
	if _, err := FindCUDAProvider(os.Getenv); err == nil {
		return appendPluginCUDA(so, dev, opts)
	} else if !errors.Is(err, ErrNoCUDAProvider) {
		return fmt.Errorf("onnx: %w", err)
	}
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return cudaError(dev, err)
	}
	defer cuda.Destroy()
	all := map[string]string{"device_id": strconv.Itoa(dev)}
	for k, v := range opts {
		all[k] = v
	}
	if err := cuda.Update(all); err != nil {
		return cudaError(dev, err)
	}
	if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
		return cudaError(dev, err)
	}
	return nil
}

func cudaError(dev int, err error) error {
	msg := strings.ToLower(err.Error())
	// The CPU build either lacks the provider entry points ("not enabled/built")
	// or fails to open libonnxruntime_providers_{shared,cuda}.so beside itself.
	if strings.Contains(msg, "not enabled") || strings.Contains(msg, "not supported") ||
		strings.Contains(msg, "not available") || strings.Contains(msg, "not built") ||
		strings.Contains(msg, "libonnxruntime_providers_") {
		return fmt.Errorf("onnx: %w (%w): %w", ErrNoCUDA, ErrNoCUDAProvider, err)
	}
	return fmt.Errorf("onnx: enable CUDA device %d: %w", dev, err)
}
