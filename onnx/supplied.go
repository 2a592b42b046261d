package onnx

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

// The few ONNX Runtime C API calls onnxruntime_go does not wrap. OrtApi is a
// table of function pointers that only ever grows, so an entry's index is fixed
// from the version that introduced it; the indices below are counted from
// onnxruntime_c_api.h (struct OrtApi) of ONNX Runtime 1.24.
enum {
	idxGetErrorMessage = 2,
	idxCreateTensorWithDataAsOrtValue = 49,
	idxCreateCpuMemoryInfo = 69,
	idxReleaseStatus = 93,
	idxReleaseMemoryInfo = 94,
	idxReleaseValue = 96,
	idxAddInitializer = 150,
};

typedef void OrtStatus;
typedef void OrtValue;
typedef void OrtMemoryInfo;
typedef void OrtSessionOptions;

typedef struct {
	const void* const* (*GetApi)(uint32_t version);
	const char* (*GetVersionString)(void);
} diffuteApiBase;

static const void* const* diffute_api;

static int diffute_api_init(const char* path) {
	if (diffute_api) return 0;
	void* h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (!h) h = dlopen(path, RTLD_NOW);
	if (!h) return 1;
	const diffuteApiBase* (*base)(void) = (const diffuteApiBase* (*)(void))dlsym(h, "OrtGetApiBase");
	if (!base) return 2;
	diffute_api = base()->GetApi(12);
	return diffute_api ? 0 : 3;
}

// diffute_status_message copies and frees a status; NULL means success.
static char* diffute_status_message(OrtStatus* st) {
	if (!st) return NULL;
	const char* (*msg)(const OrtStatus*) = (const char* (*)(const OrtStatus*))diffute_api[idxGetErrorMessage];
	void (*release)(OrtStatus*) = (void (*)(OrtStatus*))diffute_api[idxReleaseStatus];
	const char* m = msg(st);
	size_t n = 0;
	while (m[n]) n++;
	char* out = (char*)malloc(n + 1);
	for (size_t i = 0; i <= n; i++) out[i] = m[i];
	release(st);
	return out;
}

static OrtMemoryInfo* diffute_cpu_info;

static char* diffute_tensor(void* data, size_t bytes, const int64_t* shape, size_t rank, int type, OrtValue** out) {
	if (!diffute_cpu_info) {
		OrtStatus* (*mk)(int, int, OrtMemoryInfo**) = (OrtStatus* (*)(int, int, OrtMemoryInfo**))diffute_api[idxCreateCpuMemoryInfo];
		char* err = diffute_status_message(mk(0 , 0, &diffute_cpu_info)); // OrtDeviceAllocator, OrtMemTypeDefault
		if (err) return err;
	}
	OrtStatus* (*create)(const OrtMemoryInfo*, void*, size_t, const int64_t*, size_t, int, OrtValue**) =
		(OrtStatus* (*)(const OrtMemoryInfo*, void*, size_t, const int64_t*, size_t, int, OrtValue**))diffute_api[idxCreateTensorWithDataAsOrtValue];
	return diffute_status_message(create(diffute_cpu_info, data, bytes, shape, rank, type, out));
}

static void diffute_release_value(OrtValue* v) {
	((void (*)(OrtValue*))diffute_api[idxReleaseValue])(v);
}

// diffute_add_initializer hands ONNX Runtime a user-owned initializer: it
// computes on that memory in place, without a copy.
static char* diffute_add_initializer(OrtSessionOptions* so, const char* name, const OrtValue* value) {
	OrtStatus* (*add)(OrtSessionOptions*, const char*, const OrtValue*) =
		(OrtStatus* (*)(OrtSessionOptions*, const char*, const OrtValue*))diffute_api[idxAddInitializer];
	return diffute_status_message(add(so, name, value));
}
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/diffute/diffute/onnxgraph"
	ort "github.com/yalue/onnxruntime_go"
)

var (
	supplyOnce sync.Once
	errSupply  error
)

// initializedLibrary is the path of the library InitRuntime loaded, whose C API
// table the cgo files of this package bind.
func initializedLibrary() (string, error) {
	runtimeState.mu.Lock()
	defer runtimeState.mu.Unlock()
	if runtimeState.path == "" {
		return "", fmt.Errorf("onnx: ONNX Runtime is not initialised")
	}
	return runtimeState.path, nil
}

// initSupply binds the C API table of the library InitRuntime loaded.
func initSupply() error {
	supplyOnce.Do(func() {
		lib, err := initializedLibrary()
		if err != nil {
			errSupply = err
			return
		}
		p := C.CString(lib)
		defer C.free(unsafe.Pointer(p))
		if rc := C.diffute_api_init(p); rc != 0 {
			errSupply = fmt.Errorf("onnx: cannot bind ONNX Runtime's C API in %s (code %d)", lib, int(rc))
		}
	})
	return errSupply
}

func cError(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return fmt.Errorf("%s", C.GoString(msg))
}

// ortFloat is ONNX Runtime's float32 element type (ONNXTensorElementDataType,
// the same numbers as ONNX's and onnxgraph.DType).
const ortFloat = int(onnxgraph.Float)

// suppliedWeights are tensors handed to ONNX Runtime as user-owned initializers
// (AddInitializer): it computes on their memory in place, so the wrappers and the
// memory (a mapped checkpoint, or a buffer mapped outside Go's heap) must outlive
// every session given them.
type suppliedWeights struct {
	names  []*C.char
	values []unsafe.Pointer
}

// add wraps data (which must not be Go-heap memory) as a tensor named name.
func (s *suppliedWeights) add(name string, data []byte, elemType int, shape []int64) error {
	if err := initSupply(); err != nil {
		return err
	}
	if len(data) == 0 {
		return fmt.Errorf("onnx: weight %s: no data", name)
	}
	cs := C.malloc(C.size_t(8 * max(len(shape), 1)))
	defer C.free(cs)
	dims := unsafe.Slice((*C.int64_t)(cs), max(len(shape), 1))
	for i, d := range shape {
		dims[i] = C.int64_t(d)
	}
	var v unsafe.Pointer
	if err := cError(C.diffute_tensor(unsafe.Pointer(&data[0]), C.size_t(len(data)), (*C.int64_t)(cs), C.size_t(len(shape)), C.int(elemType), (*unsafe.Pointer)(unsafe.Pointer(&v)))); err != nil {
		return fmt.Errorf("onnx: weight %s: %w", name, err)
	}
	s.names = append(s.names, C.CString(name))
	s.values = append(s.values, v)
	return nil
}

// apply hands every weight to the session options. onnxruntime_go keeps the
// OrtSessionOptions pointer as the only field of SessionOptions.
func (s *suppliedWeights) apply(so *ort.SessionOptions) error {
	// ONNX Runtime 1.29 checks that every external-data file of a model loaded
	// from bytes exists (relative to the working directory, or to this folder)
	// before it looks at the supplied initializers; 1.24 does not. An empty
	// placeholder satisfies the check: the data itself is never read.
	dir, err := suppliedPlaceholderDir()
	if err != nil {
		return err
	}
	if err := so.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", dir); err != nil {
		return fmt.Errorf("onnx: session options: %w", err)
	}
	ptr := *(*unsafe.Pointer)(unsafe.Pointer(so))
	for i := range s.names {
		if err := cError(C.diffute_add_initializer(ptr, s.names[i], s.values[i])); err != nil {
			return fmt.Errorf("onnx: weight %s: %w", C.GoString(s.names[i]), err)
		}
	}
	return nil
}

// release frees the tensor wrappers (not the memory they wrap), once every
// session made with them is destroyed: ONNX Runtime borrows them.
func (s *suppliedWeights) release() {
	for _, v := range s.values {
		C.diffute_release_value(v)
	}
	for _, n := range s.names {
		C.free(unsafe.Pointer(n))
	}
	s.names, s.values = nil, nil
}

var placeholder struct {
	once sync.Once
	dir  string
	err  error
}

// suppliedPlaceholderDir returns a folder holding an empty file named
// onnxgraph.SuppliedLocation, made once per process under the temporary folder.
func suppliedPlaceholderDir() (string, error) {
	placeholder.once.Do(func() {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("diffute-supplied-%d", os.Getuid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			placeholder.err = fmt.Errorf("onnx: placeholder folder for supplied weights: %w", err)
			return
		}
		p := filepath.Join(dir, onnxgraph.SuppliedLocation)
		if _, err := os.Stat(p); err != nil {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				placeholder.err = fmt.Errorf("onnx: placeholder for supplied weights: %w", err)
				return
			}
		}
		placeholder.dir = dir
	})
	return placeholder.dir, placeholder.err
}
