package onnx

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>

// NVML's nvmlMemory_t (v1): bytes.
typedef struct { unsigned long long total, free, used; } diffute_nvml_memory;

static int (*diffute_nvml_count)(unsigned int*);
static int (*diffute_nvml_handle)(unsigned int, void**);
static int (*diffute_nvml_mem)(void*, diffute_nvml_memory*);
static int (*diffute_nvml_name)(void*, char*, unsigned int);

// diffute_nvml_load opens the driver's NVML and initialises it; it returns
// NULL, or what went wrong.
static const char* diffute_nvml_load(void) {
	void* h = dlopen("libnvidia-ml.so.1", RTLD_NOW);
	if (!h) return dlerror();
	int (*init)(void) = (int (*)(void))dlsym(h, "nvmlInit_v2");
	diffute_nvml_count = (int (*)(unsigned int*))dlsym(h, "nvmlDeviceGetCount_v2");
	diffute_nvml_handle = (int (*)(unsigned int, void**))dlsym(h, "nvmlDeviceGetHandleByIndex_v2");
	diffute_nvml_mem = (int (*)(void*, diffute_nvml_memory*))dlsym(h, "nvmlDeviceGetMemoryInfo");
	diffute_nvml_name = (int (*)(void*, char*, unsigned int))dlsym(h, "nvmlDeviceGetName");
	if (!init || !diffute_nvml_count || !diffute_nvml_handle || !diffute_nvml_mem || !diffute_nvml_name)
		return "libnvidia-ml.so.1 lacks nvmlInit_v2, nvmlDeviceGetCount_v2, nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetMemoryInfo or nvmlDeviceGetName";
	if (init() != 0) return "nvmlInit_v2 failed (is the NVIDIA driver loaded?)";
	return NULL;
}

static int diffute_nvml_devices(unsigned int* n) { return diffute_nvml_count(n); }

static int diffute_nvml_device(unsigned int i, char* name, unsigned int len, unsigned long long* used, unsigned long long* total) {
	void* dev;
	int rc = diffute_nvml_handle(i, &dev);
	if (rc) return rc;
	diffute_nvml_memory m;
	if ((rc = diffute_nvml_mem(dev, &m))) return rc;
	*used = m.used;
	*total = m.total;
	if (diffute_nvml_name(dev, name, len)) name[0] = 0;
	return 0;
}
*/
import "C"

import (
	"fmt"
	"sync"
)

// GPU is one GPU's memory as the NVIDIA driver reports it (NVML): all its
// users', not only this process's.
type GPU struct {
	Index       int // NVML's index (PCI bus order; CUDA's cuda:N agrees with CUDA_DEVICE_ORDER=PCI_BUS_ID)
	Name        string
	Used, Total uint64 // bytes
}

var (
	nvmlOnce sync.Once
	errNVML  error
)

// GPUs lists the machine's NVIDIA GPUs and their memory. It fails with a
// one-line error where there is no NVIDIA driver (libnvidia-ml.so.1).
func GPUs() ([]GPU, error) {
	nvmlOnce.Do(func() {
		if msg := C.diffute_nvml_load(); msg != nil {
			errNVML = fmt.Errorf("onnx: GPU memory: the NVIDIA driver's NVML is not available: %s", C.GoString(msg))
		}
	})
	if errNVML != nil {
		return nil, errNVML
	}
	var n C.uint
	if rc := C.diffute_nvml_devices(&n); rc != 0 {
		return nil, fmt.Errorf("onnx: GPU memory: nvmlDeviceGetCount_v2 returned %d", int(rc))
	}
	out := make([]GPU, 0, int(n))
	var err error
	var name [96]C.char // NVML_DEVICE_NAME_V2_BUFFER_SIZE
	for i := range n {
		var used, total C.ulonglong
		if rc := C.diffute_nvml_device(i, &name[0], C.uint(len(name)), &used, &total); rc != 0 {
			if err == nil {
				err = fmt.Errorf("onnx: GPU memory: GPU %d: NVML returned %d", int(i), int(rc))
			}
			continue
		}
		out = append(out, GPU{Index: int(i), Name: C.GoString(&name[0]), Used: uint64(used), Total: uint64(total)})
	}
	return out, err
}
