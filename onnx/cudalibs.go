package onnx

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// CUDALibsEnv names extra folders (a list like PATH) that hold the CUDA 13
// libraries: library folders themselves, or Python environments / site-packages
// folders whose nvidia/*/lib folders hold them (PyTorch's NVIDIA wheels).
const CUDALibsEnv = "DIFFUTE_CUDA_LIBS"

// CUDALibrary is one library the CUDA execution provider needs at run time, and
// where it was found ("" when it was not).
type CUDALibrary struct {
	Name string // what it is, e.g. "cuBLASLt"
	File string // its soname, e.g. "libcublasLt.so.13"
	Path string // where it was found; "" when missing
}

// Found reports whether the library was found.
func (l CUDALibrary) Found() bool { return l.Path != "" }

// cudaLibraries are what ONNX Runtime 1.29's CUDA provider (built for CUDA 13)
// opens: its NEEDED entries (cudart, cuBLAS, cuBLASLt, cuRAND and the driver's
// libcuda) and cuDNN 9, which it opens itself. The order is the load order.
var cudaLibraries = []struct{ name, file string }{
	{"NVIDIA driver (libcuda)", "libcuda.so.1"},
	{"CUDA 13 runtime (cudart)", "libcudart.so.13"},
	{"cuBLASLt 13", "libcublasLt.so.13"},
	{"cuBLAS 13", "libcublas.so.13"},
	{"cuRAND (CUDA 13)", "libcurand.so.10"},
	{"cuDNN 9", "libcudnn.so.9"},
}

// CUDALibraryFix is the one-line advice for a missing CUDA library.
func CUDALibraryFix(l CUDALibrary) string {
	if l.File == "libcuda.so.1" {
		return "install the NVIDIA driver (libcuda.so.1 comes with it, not with CUDA)"
	}
	return "install CUDA 13 and cuDNN 9 (or `pip install torch` for CUDA 13 into a venv), then set " +
		CUDALibsEnv + " or LD_LIBRARY_PATH to the folder holding " + l.File
}

// FindCUDALibraries reports where each CUDA 13 library the CUDA provider needs is
// found, searching CUDALibrarySearchPath in order.
func FindCUDALibraries(getenv func(string) string) []CUDALibrary {
	return findCUDALibraries(CUDALibrarySearchPath(getenv))
}

func findCUDALibraries(dirs []string) []CUDALibrary {
	libs := make([]CUDALibrary, 0, len(cudaLibraries))
	for _, want := range cudaLibraries {
		l := CUDALibrary{Name: want.name, File: want.file}
		for _, d := range dirs {
			if p := filepath.Join(d, want.file); exists(p) {
				l.Path = p
				break
			}
		}
		libs = append(libs, l)
	}
	return libs
}

// CUDALibrarySearchPath returns the folders searched for the CUDA libraries, in
// order: DIFFUTE_CUDA_LIBS, LD_LIBRARY_PATH, /usr/local/cuda*/lib64, the system
// library folders, then the nvidia/*/lib folders of Python environments
// ($VIRTUAL_ENV, $CONDA_PREFIX, ./.venv, ~/.venv, ~/venv, /opt/*, ~/.local and the
// system site-packages).
func CUDALibrarySearchPath(getenv func(string) string) []string {
	cwd, _ := os.Getwd()
	return cudaSearchPath(getenv, "/", cwd)
}

// cudaSearchPath is CUDALibrarySearchPath with the file system's root (fixed
// system locations are looked up under it, so tests use a temporary folder).
func cudaSearchPath(getenv func(string) string, root, cwd string) []string {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var dirs []string
	seen := map[string]bool{}
	add := func(d string) {
		if d == "" || seen[d] || !isDir(d) {
			return
		}
		seen[d] = true
		dirs = append(dirs, d)
	}
	// under joins a fixed absolute location to root and expands its globs.
	under := func(pattern string) []string {
		m, _ := filepath.Glob(filepath.Join(root, pattern))
		sort.Strings(m)
		return m
	}
	// pythonLibs adds the nvidia/*/lib folders of a Python environment (a venv or
	// prefix) or of a site-packages folder.
	pythonLibs := func(prefix string) {
		for _, sp := range []string{"", "lib/python3*/site-packages", "lib/python3*/dist-packages", "lib64/python3*/site-packages"} {
			m, _ := filepath.Glob(filepath.Join(prefix, sp, "nvidia", "*", "lib"))
			sort.Strings(m)
			for _, d := range m {
				add(d)
			}
		}
	}
	for _, d := range filepath.SplitList(getenv(CUDALibsEnv)) {
		if d != "" {
			add(d)
			pythonLibs(d)
		}
	}
	for _, d := range filepath.SplitList(getenv("LD_LIBRARY_PATH")) {
		add(d)
	}
	for _, d := range under("usr/local/cuda*/lib64") {
		add(d)
	}
	for _, d := range under("usr/local/cuda*/targets/x86_64-linux/lib") {
		add(d)
	}
	for _, d := range []string{"usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu", "usr/lib64", "usr/lib", "usr/local/lib", "usr/lib/wsl/lib"} {
		add(filepath.Join(root, d))
	}
	for _, v := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if p := getenv(v); p != "" {
			pythonLibs(p)
		}
	}
	if cwd != "" {
		pythonLibs(filepath.Join(cwd, ".venv"))
		pythonLibs(filepath.Join(cwd, "venv"))
	}
	if home := getenv("HOME"); home != "" {
		for _, v := range []string{".venv", "venv", ".local", "miniconda3", "anaconda3"} {
			pythonLibs(filepath.Join(home, v))
		}
	}
	for _, p := range under("opt/*") {
		pythonLibs(p)
	}
	for _, p := range []string{"venv", "usr/local", "usr"} {
		pythonLibs(filepath.Join(root, p))
	}
	for _, d := range under("usr/lib/python3/dist-packages/nvidia/*/lib") {
		add(d)
	}
	return dirs
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// missingLibrary extracts the library named in a dynamic loader failure
// ("libcublasLt.so.13: cannot open shared object file: …"), or "".
func missingLibrary(msg string) string {
	i := strings.Index(msg, ": cannot open shared object file")
	if i < 0 {
		return ""
	}
	start := strings.LastIndexAny(msg[:i], " \t\n:'\"") + 1
	return msg[start:i]
}
