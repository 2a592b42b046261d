package onnx

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func touch(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("lib"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFindLibraryOrder(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	flagLib := touch(t, filepath.Join(root, "flag", "libonnxruntime.so.1"))
	envLib := touch(t, filepath.Join(root, "env", "libonnxruntime.so.1"))
	exeDir := filepath.Join(root, "bin")
	exeLib := touch(t, filepath.Join(exeDir, "libonnxruntime.so.1"))
	project := filepath.Join(root, "project")
	cwd := filepath.Join(project, "cmd", "diffute")
	if err := os.MkdirAll(cwd, 0o755); err != nil {
		t.Fatal(err)
	}
	treeLib := touch(t, filepath.Join(project, "third_party", "onnxruntime", "libonnxruntime.so.1"))
	sysDir := filepath.Join(root, "usr", "lib")
	sysLib := touch(t, filepath.Join(sysDir, "libonnxruntime.so"))
	ldDir := filepath.Join(root, "ld")
	ldLib := touch(t, filepath.Join(ldDir, "libonnxruntime.so.1"))
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	withEnv := env(map[string]string{LibraryEnv: envLib, "LD_LIBRARY_PATH": ldDir})
	ldOnly := env(map[string]string{"LD_LIBRARY_PATH": "/nonexistent:" + ldDir})
	empty := root + "/empty"

	cases := []struct {
		name        string
		flag        string
		getenv      func(string) string
		exeDir, cwd string
		sys         []string
		want        string
	}{
		{"flag first", flagLib, withEnv, exeDir, cwd, []string{sysDir}, flagLib},
		{"then env", "", withEnv, exeDir, cwd, []string{sysDir}, envLib},
		{"then next to the executable", "", ldOnly, exeDir, cwd, []string{sysDir}, exeLib},
		{"then third_party under cwd or a parent", "", ldOnly, empty, cwd, []string{sysDir}, treeLib},
		{"then system dirs", "", ldOnly, empty, empty, []string{sysDir}, sysLib},
		{"then LD_LIBRARY_PATH", "", ldOnly, empty, empty, nil, ldLib},
	}
	for _, c := range cases {
		got, err := findLibrary(c.flag, c.getenv, c.exeDir, c.cwd, c.sys)
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestFindLibraryMissing(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	_, err := findLibrary("", func(string) string { return "" }, root, root, []string{root})
	if !errors.Is(err, ErrLibraryNotFound) {
		t.Fatalf("err = %v, want ErrLibraryNotFound", err)
	}
	const want = "ONNX Runtime library not found; run scripts/setup-ort.sh or set --ort-lib / DIFFUTE_ORT_LIB"
	if err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
	// An explicit flag or variable naming a missing file is an error, one line, that
	// names it, even when a library exists elsewhere.
	touch(t, filepath.Join(root, "libonnxruntime.so.1"))
	for _, c := range []struct{ flag, env, source string }{
		{filepath.Join(root, "nope.so"), "", "--ort-lib"},
		{"", filepath.Join(root, "nope.so"), LibraryEnv},
	} {
		_, err := findLibrary(c.flag, func(k string) string {
			if k == LibraryEnv {
				return c.env
			}
			return ""
		}, root, root, nil)
		if err == nil || !strings.Contains(err.Error(), "nope.so") || !strings.Contains(err.Error(), c.source) ||
			strings.Contains(err.Error(), "\n") {
			t.Errorf("flag %q env %q: err = %v", c.flag, c.env, err)
		}
	}
}

func TestParseDevice(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"": -1, "cpu": -1, "CPU": -1, "cuda": 0, "cuda:0": 0, "cuda:3": 3} {
		if got, err := parseDevice(in); err != nil || got != want {
			t.Errorf("parseDevice(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"gpu", "cuda:", "cuda:-1", "cuda:x", "rocm:0"} {
		if _, err := parseDevice(bad); err == nil {
			t.Errorf("parseDevice(%q) succeeded", bad)
		}
	}
}
