package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// CUDAProviderEnv names the CUDA plugin execution provider library
// (libonnxruntime_providers_cuda.so) when it is not beside the ONNX Runtime library.
const CUDAProviderEnv = "DIFFUTE_CUDA_PROVIDER"

// cudaProviderFile is the CUDA provider's file name; scripts/setup-ort.sh --cuda
// places it beside ONNX Runtime 1.29's libonnxruntime.so.
const cudaProviderFile = "libonnxruntime_providers_cuda.so"

// cudaEPName is the name the CUDA provider gives its devices.
const cudaEPName = "CUDAExecutionProvider"

// ErrNoCUDAProvider is returned when no CUDA plugin provider library is found.
var ErrNoCUDAProvider = errors.New("no CUDA provider library (" + cudaProviderFile + ") beside the ONNX Runtime library; run scripts/setup-ort.sh --cuda and use --ort-lib third_party/onnxruntime-cuda/libonnxruntime.so, or set " + CUDAProviderEnv)

// ErrCUDALibraryMissing is returned when the CUDA provider cannot load because a
// CUDA 13 library is missing.
var ErrCUDALibraryMissing = errors.New("CUDA library missing")

// FindCUDAProvider returns the CUDA plugin provider library: $DIFFUTE_CUDA_PROVIDER,
// else libonnxruntime_providers_cuda.so beside the initialised ONNX Runtime
// library (a provider must match its core library's version, so it is not looked
// for anywhere else).
func FindCUDAProvider(getenv func(string) string) (string, error) {
	if getenv != nil {
		if p := getenv(CUDAProviderEnv); p != "" {
			if isFile(p) {
				return p, nil
			}
			return "", fmt.Errorf("CUDA provider library %q (from %s) not found", p, CUDAProviderEnv)
		}
	}
	runtimeState.mu.Lock()
	lib := runtimeState.path
	runtimeState.mu.Unlock()
	if lib == "" {
		return "", errors.New("onnx: ONNX Runtime is not initialised")
	}
	p := filepath.Join(filepath.Dir(lib), cudaProviderFile)
	if isFile(p) {
		return p, nil
	}
	return "", ErrNoCUDAProvider
}

var cudaProvider struct {
	once sync.Once
	path string
	err  error
}

// LoadCUDAProvider registers the CUDA plugin execution provider with the
// process's ONNX Runtime environment, once; it returns the library's path. The
// CUDA 13 libraries found by FindCUDALibraries are loaded first, so a PyTorch
// venv's NVIDIA wheels serve without LD_LIBRARY_PATH. A missing library is one
// line naming it and the fix (ErrCUDALibraryMissing). getenv (nil: the
// process's) is read by the first call only.
func LoadCUDAProvider(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cudaProvider.once.Do(func() {
		cudaProvider.path, cudaProvider.err = loadCUDAProvider(getenv)
	})
	return cudaProvider.path, cudaProvider.err
}

func loadCUDAProvider(getenv func(string) string) (string, error) {
	path, err := FindCUDAProvider(getenv)
	if err != nil {
		return "", err
	}
	if err := initEpAPI(); err != nil {
		return path, err
	}
	libs := FindCUDALibraries(getenv)
	for _, l := range libs {
		if l.Found() {
			if err := preloadLibrary(l.Path); err != nil {
				return path, fmt.Errorf("onnx: load %s: %w", l.Path, err)
			}
			if l.File == "libcudnn.so.9" {
				preloadCuDNNParts(filepath.Dir(l.Path))
			}
		}
	}
	if err := ort.RegisterExecutionProviderLibrary("diffute-cuda", path); err != nil {
		return path, cudaLoadError(path, err, libs)
	}
	return path, nil
}

// cudaLoadError turns the dynamic loader's failure into one line that names the
// missing library and the fix.
func cudaLoadError(provider string, err error, libs []CUDALibrary) error {
	msg := err.Error()
	missing := missingLibrary(msg)
	if missing == "" {
		return fmt.Errorf("onnx: register the CUDA provider %s: %s", provider, firstLine(msg))
	}
	l := CUDALibrary{Name: missing, File: missing}
	stem, major, _ := strings.Cut(missing, ".so.")
	for _, known := range libs {
		if known.File == missing {
			l = known
		}
		// The provider wants another major version of a library this
		// machine has: it was built for another CUDA.
		if kstem, kmajor, _ := strings.Cut(known.File, ".so."); kstem == stem && kmajor != major && known.Found() {
			return fmt.Errorf("onnx: %w: the CUDA provider %s needs %s, a major version this machine does not have (it has %s at %s): "+
				"the provider was built for another CUDA; use ONNX Runtime's provider built for CUDA 13 (scripts/setup-ort.sh --cuda)",
				ErrCUDALibraryMissing, provider, missing, known.File, known.Path)
		}
	}
	return fmt.Errorf("onnx: %w: the CUDA provider needs %s (%s), not found: %s (diffute doctor lists each library)",
		ErrCUDALibraryMissing, missing, l.Name, CUDALibraryFix(l))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// CUDADevices returns the CUDA provider's GPUs in the order cuda:N counts them,
// loading the provider first.
func CUDADevices() ([]EPDevice, error) {
	if _, err := LoadCUDAProvider(nil); err != nil {
		return nil, err
	}
	all, err := EPDevices()
	if err != nil {
		return nil, err
	}
	var gpus []EPDevice
	for _, d := range all {
		if d.EP == cudaEPName {
			gpus = append(gpus, d)
		}
	}
	return gpus, nil
}

// appendPluginCUDA selects the CUDA plugin provider on GPU dev of CUDADevices,
// with the provider options opts (nil: its defaults, which already search
// cuDNN's convolution algorithms exhaustively with the largest workspace).
func appendPluginCUDA(so *ort.SessionOptions, dev int, opts map[string]string) error {
	gpus, err := CUDADevices()
	if err != nil {
		return err
	}
	if len(gpus) == 0 {
		return fmt.Errorf("onnx: device cuda:%d: the CUDA provider found no GPU (check nvidia-smi and the driver)", dev)
	}
	if dev >= len(gpus) {
		return fmt.Errorf("onnx: device cuda:%d: this machine has %d CUDA device(s), cuda:0 to cuda:%d", dev, len(gpus), len(gpus)-1)
	}
	// The selected OrtEpDevice names the GPU; no device_id option is passed.
	return appendEPDevice(so, gpus[dev], opts)
}

// preloadCuDNNParts loads the sub-libraries cuDNN 9 opens by name at run time
// (libcudnn_graph.so.9, libcudnn_ops.so.9, …) from dir, so they are found
// without LD_LIBRARY_PATH. Best effort: a part whose own dependencies are
// missing (the runtime-compiled engines need NVRTC) is left to cuDNN, which
// reports it if it is ever needed; parts are retried once for load order.
func preloadCuDNNParts(dir string) {
	parts, _ := filepath.Glob(filepath.Join(dir, "libcudnn_*.so.9"))
	for range 2 {
		var failed []string
		for _, p := range parts {
			if preloadLibrary(p) != nil {
				failed = append(failed, p)
			}
		}
		parts = failed
	}
}
