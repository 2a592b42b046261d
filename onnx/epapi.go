package onnx

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The plugin execution provider calls of ONNX Runtime's C API (1.22 and later)
// that onnxruntime_go v1.27 does not wrap. Indices counted from struct OrtApi in
// onnxruntime_c_api.h of onnxruntime_go v1.27.0 (every entry, ORT_CLASS_RELEASE
// ones included, counted from 0), the same way as in supplied.go.
enum {
	epIdxGetErrorMessage = 2,
	epIdxCreateEnv = 3,
	epIdxReleaseStatus = 93,
	epIdxGetAvailableProviders = 125,
	epIdxReleaseAvailableProviders = 126,
	epIdxGetEpDevices = 303,
	epIdxSessionOptionsAppendExecutionProvider_V2 = 304,
	epIdxHardwareDeviceType = 307,
	epIdxHardwareDeviceVendorId = 308,
	epIdxHardwareDeviceVendor = 309,
	epIdxHardwareDeviceDeviceId = 310,
	epIdxEpDeviceEpName = 312,
	epIdxEpDeviceEpVendor = 313,
	epIdxEpDeviceDevice = 316,
};

typedef void OrtStatus;
typedef void OrtEnv;
typedef void OrtEpDevice;
typedef void OrtHardwareDevice;
typedef void OrtSessionOptions;

typedef struct {
	const void* const* (*GetApi)(uint32_t version);
	const char* (*GetVersionString)(void);
} diffuteEpApiBase;

static const void* const* ep_api;
static OrtEnv* ep_env;

static char* ep_strdup(const char* s) {
	size_t n = strlen(s);
	char* out = (char*)malloc(n + 1);
	memcpy(out, s, n + 1);
	return out;
}

static char* ep_status(OrtStatus* st) {
	if (!st) return NULL;
	const char* m = ((const char* (*)(const OrtStatus*))ep_api[epIdxGetErrorMessage])(st);
	char* out = ep_strdup(m);
	((void (*)(OrtStatus*))ep_api[epIdxReleaseStatus])(st);
	return out;
}

// ep_init binds API version 22 (the first with plugin execution providers) of
// the library at path and takes a reference to the process's OrtEnv: OrtEnv is a
// singleton, so CreateEnv returns the one onnxruntime_go created.
static char* ep_init(const char* path) {
	if (ep_api) return NULL;
	void* h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (!h) h = dlopen(path, RTLD_NOW);
	if (!h) return ep_strdup(dlerror());
	const diffuteEpApiBase* (*base)(void) = (const diffuteEpApiBase* (*)(void))dlsym(h, "OrtGetApiBase");
	if (!base) return ep_strdup("no OrtGetApiBase");
	const void* const* api = base()->GetApi(22);
	if (!api) return ep_strdup("ONNX Runtime older than 1.22 has no plugin execution providers");
	ep_api = api;
	OrtStatus* (*create)(int, const char*, OrtEnv**) = (OrtStatus* (*)(int, const char*, OrtEnv**))ep_api[epIdxCreateEnv];
	char* err = ep_status(create(3, "diffute", &ep_env)); // ORT_LOGGING_LEVEL_ERROR
	if (err) ep_api = NULL;
	return err;
}

// ep_preload loads a library by full path into the global namespace, so that a
// provider that needs it by soname finds it without LD_LIBRARY_PATH.
static char* ep_preload(const char* path) {
	if (dlopen(path, RTLD_NOW | RTLD_GLOBAL)) return NULL;
	return ep_strdup(dlerror());
}

static char* ep_providers(char*** out, int* n) {
	OrtStatus* (*get)(char***, int*) = (OrtStatus* (*)(char***, int*))ep_api[epIdxGetAvailableProviders];
	return ep_status(get(out, n));
}

static void ep_release_providers(char** p, int n) {
	((OrtStatus* (*)(char**, int))ep_api[epIdxReleaseAvailableProviders])(p, n);
}

static char* ep_devices(const OrtEpDevice* const** out, size_t* n) {
	OrtStatus* (*get)(const OrtEnv*, const OrtEpDevice* const**, size_t*) =
		(OrtStatus* (*)(const OrtEnv*, const OrtEpDevice* const**, size_t*))ep_api[epIdxGetEpDevices];
	return ep_status(get(ep_env, out, n));
}

static const OrtEpDevice* ep_device_at(const OrtEpDevice* const* list, size_t i) { return list[i]; }

static const char* ep_device_ep_name(const OrtEpDevice* d) {
	return ((const char* (*)(const OrtEpDevice*))ep_api[epIdxEpDeviceEpName])(d);
}

static const char* ep_device_ep_vendor(const OrtEpDevice* d) {
	return ((const char* (*)(const OrtEpDevice*))ep_api[epIdxEpDeviceEpVendor])(d);
}

static const OrtHardwareDevice* ep_device_hw(const OrtEpDevice* d) {
	return ((const OrtHardwareDevice* (*)(const OrtEpDevice*))ep_api[epIdxEpDeviceDevice])(d);
}

static int ep_hw_type(const OrtHardwareDevice* h) {
	return ((int (*)(const OrtHardwareDevice*))ep_api[epIdxHardwareDeviceType])(h);
}

static uint32_t ep_hw_vendor_id(const OrtHardwareDevice* h) {
	return ((uint32_t (*)(const OrtHardwareDevice*))ep_api[epIdxHardwareDeviceVendorId])(h);
}

static const char* ep_hw_vendor(const OrtHardwareDevice* h) {
	return ((const char* (*)(const OrtHardwareDevice*))ep_api[epIdxHardwareDeviceVendor])(h);
}

static uint32_t ep_hw_device_id(const OrtHardwareDevice* h) {
	return ((uint32_t (*)(const OrtHardwareDevice*))ep_api[epIdxHardwareDeviceDeviceId])(h);
}

static char* ep_append(OrtSessionOptions* so, const OrtEpDevice* d, const char* const* keys, const char* const* vals, size_t n) {
	OrtStatus* (*app)(OrtSessionOptions*, OrtEnv*, const OrtEpDevice* const*, size_t, const char* const*, const char* const*, size_t) =
		(OrtStatus* (*)(OrtSessionOptions*, OrtEnv*, const OrtEpDevice* const*, size_t, const char* const*, const char* const*, size_t))ep_api[epIdxSessionOptionsAppendExecutionProvider_V2];
	const OrtEpDevice* one[1] = {d};
	return ep_status(app(so, ep_env, one, 1, keys, vals, n));
}
*/
import "C"

import (
	"fmt"
	"sort"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

var (
	epOnce sync.Once
	errEp  error
)

// initEpAPI binds the plugin execution provider calls of the library InitRuntime
// loaded.
func initEpAPI() error {
	epOnce.Do(func() {
		lib, err := initializedLibrary()
		if err != nil {
			errEp = err
			return
		}
		p := C.CString(lib)
		defer C.free(unsafe.Pointer(p))
		if err := cError(C.ep_init(p)); err != nil {
			errEp = fmt.Errorf("onnx: %s: %w", lib, err)
		}
	})
	return errEp
}

// preloadLibrary loads the shared library at path into the process's global
// namespace.
func preloadLibrary(path string) error {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	return cError(C.ep_preload(p))
}

// AvailableProviders returns the execution providers the initialised ONNX
// Runtime library was built with (GetAvailableProviders; plugin providers are
// listed by EPDevices instead).
func AvailableProviders() ([]string, error) {
	if err := initEpAPI(); err != nil {
		return nil, err
	}
	var list **C.char
	var n C.int
	if err := cError(C.ep_providers(&list, &n)); err != nil {
		return nil, fmt.Errorf("onnx: available providers: %w", err)
	}
	defer C.ep_release_providers(list, n)
	names := make([]string, 0, int(n))
	for _, s := range unsafe.Slice(list, int(n)) {
		names = append(names, C.GoString(s))
	}
	sort.Strings(names)
	return names, nil
}

// EPDevice is one (execution provider, hardware device) pair ONNX Runtime offers
// (OrtEpDevice).
type EPDevice struct {
	EP       string // the execution provider's name, e.g. "CUDAExecutionProvider"
	EPVendor string
	Type     string // "cpu", "gpu" or "npu"
	Vendor   string // the hardware vendor, e.g. "NVIDIA"
	VendorID uint32 // PCI vendor id (0x10de for NVIDIA)
	DeviceID uint32 // PCI device id

	ptr unsafe.Pointer // *OrtEpDevice, owned by ONNX Runtime's environment
}

// String describes the device in one line.
func (d EPDevice) String() string {
	return fmt.Sprintf("%s on %s %s (vendor 0x%04x, device 0x%04x)", d.EP, d.Vendor, d.Type, d.VendorID, d.DeviceID)
}

// EPDevices lists every device of every execution provider registered with the
// environment (GetEpDevices): the CPU provider's, and those of plugin providers
// such as the CUDA one once LoadCUDAProvider succeeded.
func EPDevices() ([]EPDevice, error) {
	if err := initEpAPI(); err != nil {
		return nil, err
	}
	var list *unsafe.Pointer
	var n C.size_t
	if err := cError(C.ep_devices((**unsafe.Pointer)(unsafe.Pointer(&list)), &n)); err != nil {
		return nil, fmt.Errorf("onnx: EP devices: %w", err)
	}
	devs := make([]EPDevice, 0, int(n))
	for i := range int(n) {
		d := C.ep_device_at((*unsafe.Pointer)(unsafe.Pointer(list)), C.size_t(i))
		hw := C.ep_device_hw(d)
		typ := "cpu"
		switch C.ep_hw_type(hw) {
		case 1:
			typ = "gpu"
		case 2:
			typ = "npu"
		}
		devs = append(devs, EPDevice{
			EP:       C.GoString(C.ep_device_ep_name(d)),
			EPVendor: C.GoString(C.ep_device_ep_vendor(d)),
			Type:     typ,
			Vendor:   C.GoString(C.ep_hw_vendor(hw)),
			VendorID: uint32(C.ep_hw_vendor_id(hw)),
			DeviceID: uint32(C.ep_hw_device_id(hw)),
			ptr:      d,
		})
	}
	return devs, nil
}

// appendEPDevice selects device d's execution provider for the session options
// (SessionOptionsAppendExecutionProvider_V2), with provider options opts.
func appendEPDevice(so *ort.SessionOptions, d EPDevice, opts map[string]string) error {
	if err := initEpAPI(); err != nil {
		return err
	}
	keys := make([]*C.char, 0, len(opts)+1)
	vals := make([]*C.char, 0, len(opts)+1)
	names := make([]string, 0, len(opts))
	for k := range opts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		keys = append(keys, C.CString(k))
		vals = append(vals, C.CString(opts[k]))
	}
	defer func() {
		for i := range keys {
			C.free(unsafe.Pointer(keys[i]))
			C.free(unsafe.Pointer(vals[i]))
		}
	}()
	// C arrays of C pointers: the Go slices hold only C memory.
	ck := C.malloc(C.size_t(8 * max(len(keys), 1)))
	cv := C.malloc(C.size_t(8 * max(len(vals), 1)))
	defer C.free(ck)
	defer C.free(cv)
	copy(unsafe.Slice((**C.char)(ck), max(len(keys), 1)), keys)
	copy(unsafe.Slice((**C.char)(cv), max(len(vals), 1)), vals)
	ptr := *(*unsafe.Pointer)(unsafe.Pointer(so))
	if err := cError(C.ep_append(ptr, d.ptr, (**C.char)(ck), (**C.char)(cv), C.size_t(len(keys)))); err != nil {
		return fmt.Errorf("onnx: select %s: %w", d.EP, err)
	}
	return nil
}
