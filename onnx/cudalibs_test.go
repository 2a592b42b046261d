package onnx

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/diffute/diffute/internal/ortest"
	ort "github.com/yalue/onnxruntime_go"
)

// fakeLib creates an empty file at root/rel (a stand-in for a shared library) and
// returns its folder.
func fakeLib(t *testing.T, root, rel string) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(p)
}

func TestFindCUDALibraries(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files []string          // under the fake root
		env   map[string]string // values may use {root}
		want  map[string]string // soname → path under root; absent = missing
	}{
		{
			name: "nothing",
			want: map[string]string{},
		},
		{
			name:  "cuda toolkit and driver",
			files: []string{"usr/local/cuda-13.0/lib64/libcudart.so.13", "usr/local/cuda-13.0/lib64/libcublas.so.13", "usr/local/cuda-13.0/lib64/libcublasLt.so.13", "usr/local/cuda-13.0/lib64/libcurand.so.10", "usr/lib/x86_64-linux-gnu/libcuda.so.1"},
			want: map[string]string{
				"libcudart.so.13": "usr/local/cuda-13.0/lib64/libcudart.so.13", "libcublas.so.13": "usr/local/cuda-13.0/lib64/libcublas.so.13",
				"libcublasLt.so.13": "usr/local/cuda-13.0/lib64/libcublasLt.so.13", "libcurand.so.10": "usr/local/cuda-13.0/lib64/libcurand.so.10",
				"libcuda.so.1": "usr/lib/x86_64-linux-gnu/libcuda.so.1",
			},
		},
		{
			name:  "PyTorch venv named by VIRTUAL_ENV",
			files: []string{"venvs/torch/lib/python3.12/site-packages/nvidia/cudnn/lib/libcudnn.so.9", "venvs/torch/lib/python3.12/site-packages/nvidia/cu13/lib/libcublasLt.so.13"},
			env:   map[string]string{"VIRTUAL_ENV": "{root}/venvs/torch"},
			want: map[string]string{
				"libcudnn.so.9": "venvs/torch/lib/python3.12/site-packages/nvidia/cudnn/lib/libcudnn.so.9", "libcublasLt.so.13": "venvs/torch/lib/python3.12/site-packages/nvidia/cu13/lib/libcublasLt.so.13",
			},
		},
		{
			name:  "venv under /opt found without a variable",
			files: []string{"opt/venv/lib/python3.11/site-packages/nvidia/curand/lib/libcurand.so.10"},
			want:  map[string]string{"libcurand.so.10": "opt/venv/lib/python3.11/site-packages/nvidia/curand/lib/libcurand.so.10"},
		},
		{
			name:  "home .venv",
			files: []string{"home/u/.venv/lib/python3.12/site-packages/nvidia/cuda_runtime/lib/libcudart.so.13"},
			env:   map[string]string{"HOME": "{root}/home/u"},
			want:  map[string]string{"libcudart.so.13": "home/u/.venv/lib/python3.12/site-packages/nvidia/cuda_runtime/lib/libcudart.so.13"},
		},
		{
			name:  "DIFFUTE_CUDA_LIBS first: a lib folder and a site-packages folder",
			files: []string{"mine/libcudart.so.13", "sp/nvidia/cudnn/lib/libcudnn.so.9", "usr/local/cuda/lib64/libcudart.so.13"},
			env:   map[string]string{CUDALibsEnv: "{root}/mine:{root}/sp"},
			want:  map[string]string{"libcudart.so.13": "mine/libcudart.so.13", "libcudnn.so.9": "sp/nvidia/cudnn/lib/libcudnn.so.9"},
		},
		{
			name:  "LD_LIBRARY_PATH before the toolkit",
			files: []string{"ld/libcublas.so.13", "usr/local/cuda/lib64/libcublas.so.13"},
			env:   map[string]string{"LD_LIBRARY_PATH": "{root}/ld"},
			want:  map[string]string{"libcublas.so.13": "ld/libcublas.so.13"},
		},
		{
			name:  "wrong major version is not found",
			files: []string{"usr/local/cuda-12.4/lib64/libcudart.so.12", "usr/local/cuda-12.4/lib64/libcublasLt.so.12"},
			want:  map[string]string{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			for _, f := range c.files {
				fakeLib(t, root, f)
			}
			getenv := func(k string) string { return strings.ReplaceAll(c.env[k], "{root}", root) }
			libs := findCUDALibraries(cudaSearchPath(getenv, root, ""))
			if len(libs) != len(cudaLibraries) {
				t.Fatalf("got %d libraries, want %d", len(libs), len(cudaLibraries))
			}
			for _, l := range libs {
				want := ""
				if w, ok := c.want[l.File]; ok {
					want = filepath.Join(root, w)
				}
				if l.Path != want {
					t.Errorf("%s: found at %q, want %q", l.File, l.Path, want)
				}
				if !l.Found() && !strings.Contains(CUDALibraryFix(l), "install") {
					t.Errorf("%s: fix %q says nothing to do", l.File, CUDALibraryFix(l))
				}
			}
		})
	}
}

func TestCUDASearchPathOrder(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a := fakeLib(t, root, "a/x")
	b := fakeLib(t, root, "usr/local/cuda-13.0/lib64/x")
	sys := fakeLib(t, root, "usr/lib/x86_64-linux-gnu/x")
	venv := fakeLib(t, root, "venv/lib/python3.12/site-packages/nvidia/cublas/lib/x")
	getenv := func(k string) string {
		if k == "LD_LIBRARY_PATH" {
			return a + "::" + a + ":" + filepath.Join(root, "missing")
		}
		return ""
	}
	got := cudaSearchPath(getenv, root, "")
	want := []string{a, b, sys, filepath.Join(root, "usr/lib"), venv}
	if !slices.Equal(got, want) {
		t.Errorf("search path\n got %q\nwant %q", got, want)
	}
}

func TestMissingLibrary(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]string{
		"Error loading \"/x/libonnxruntime_providers_cuda.so\" which depends on \"libcublasLt.so.13\" which is missing. (Error 2: \"libcublasLt.so.13: cannot open shared object file: No such file or directory\")": "libcublasLt.so.13",
		"libcudnn.so.9: cannot open shared object file: No such file or directory": "libcudnn.so.9",
		"something else": "",
	} {
		if got := missingLibrary(msg); got != want {
			t.Errorf("missingLibrary(%q) = %q, want %q", msg, got, want)
		}
	}
	err := cudaLoadError("/p/"+cudaProviderFile, errors.New("libcublasLt.so.13: cannot open shared object file: No such file or directory"), findCUDALibraries(nil))
	if msg := err.Error(); !strings.Contains(msg, "libcublasLt.so.13") || !strings.Contains(msg, "CUDA 13") || strings.Contains(msg, "\n") {
		t.Errorf("cudaLoadError = %q, want one line naming libcublasLt.so.13 and the fix", msg)
	}
	// A provider built for CUDA 12 on a CUDA 13 machine.
	libs := findCUDALibraries(nil)
	for i := range libs {
		libs[i].Path = "/cuda/lib/" + libs[i].File
	}
	err = cudaLoadError("/p/"+cudaProviderFile, errors.New("libcublasLt.so.12: cannot open shared object file: No such file or directory"), libs)
	if msg := err.Error(); !errors.Is(err, ErrCUDALibraryMissing) || !strings.Contains(msg, "libcublasLt.so.12") ||
		!strings.Contains(msg, "/cuda/lib/libcublasLt.so.13") || !strings.Contains(msg, "built for another CUDA") || strings.Contains(msg, "\n") {
		t.Errorf("wrong CUDA major: cudaLoadError = %q, want one line naming both versions", msg)
	}
}

// TestCUDAPluginProvider runs TestCUDAOnCPUBuild and TestCUDADevice in a child
// process on ONNX Runtime 1.29 with the CUDA plugin provider (the runtime is
// process-wide, so this process keeps its own library).
func TestCUDAPluginProvider(t *testing.T) {
	if os.Getenv("DIFFUTE_TEST_CHILD") != "" {
		return // this process is the child the test started
	}
	dir := ortest.CUDARuntime(t)
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^(TestCUDAOnCPUBuild|TestCUDADevice)$", "-test.v")
	cmd.Env = append(os.Environ(), LibraryEnv+"="+filepath.Join(dir, "libonnxruntime.so"), "DIFFUTE_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
}

// TestCUDADevice checks cuda:N past the last GPU, where a GPU is present.
func TestCUDADevice(t *testing.T) {
	requireORT(t)
	gpus, err := CUDADevices()
	if err != nil || len(gpus) == 0 {
		t.Skipf("no CUDA GPU here (also under CI=true): %v", err)
	}
	for _, g := range gpus {
		t.Logf("GPU: %s", g)
	}
	_, err = New(Config{Device: "cuda:7"})
	if len(gpus) > 7 {
		return
	}
	if err == nil || !strings.Contains(err.Error(), "cuda:7") {
		t.Errorf("cuda:7 on %d GPU(s): err = %v", len(gpus), err)
	}
	if _, err := New(Config{Device: "cuda:0"}); err != nil {
		t.Errorf("cuda:0: %v", err)
	}
}

// TestEPDevices checks the plugin-provider calls on the CPU provider's own
// device, which every library since 1.22 lists: GetEpDevices on the process's
// OrtEnv, the OrtEpDevice accessors and SessionOptionsAppendExecutionProvider_V2.
func TestEPDevices(t *testing.T) {
	requireORT(t)
	devs, err := EPDevices()
	if err != nil {
		t.Fatal(err)
	}
	var cpu *EPDevice
	for i, d := range devs {
		t.Logf("EP device: %s", d)
		if d.EP == "CPUExecutionProvider" && d.Type == "cpu" {
			cpu = &devs[i]
		}
	}
	if cpu == nil {
		t.Fatalf("no CPUExecutionProvider device among %v", devs)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if err := appendEPDevice(so, *cpu, map[string]string{}); err != nil {
		t.Fatalf("append the CPU EP device: %v", err)
	}
	providers, err := AvailableProviders()
	if err != nil || !slices.Contains(providers, "CPUExecutionProvider") {
		t.Errorf("AvailableProviders = %v, %v", providers, err)
	}
}
