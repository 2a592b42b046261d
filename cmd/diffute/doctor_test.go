package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffute/diffute/internal/ortest"
	"github.com/diffute/diffute/onnx"
	"github.com/diffute/diffute/tinymodel"
)

// TestDoctor runs diffute doctor on this machine's ONNX Runtime: it must exit 0
// when the CPU works and say, one line each, what CUDA lacks.
func TestDoctor(t *testing.T) {
	lib := ortLib(t)
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"doctor"}, testEnv(t, lib, nil), &out, &errb); err != nil {
		t.Fatalf("doctor: %v\n%s%s", err, out.String(), errb.String())
	}
	got := out.String()
	t.Logf("doctor:\n%s", got)
	for _, want := range []string{"ONNX Runtime: " + lib + " (version ", "providers built in: ", "CPU: ok", "NVIDIA driver: ",
		"CUDA provider library: ", "CUDA library libcudart.so.13", "CUDA library libcublasLt.so.13", "CUDA library libcudnn.so.9", "CUDA: "} {
		if !strings.Contains(got, want) {
			t.Errorf("doctor output lacks %q", want)
		}
	}
	if strings.Contains(got, "CUDA: available") {
		return // a GPU machine
	}
	if !strings.Contains(got, "GPU devices: none") || !strings.Contains(got, "CUDA: unavailable (--device cuda:N will fail; cpu works): ") {
		t.Errorf("doctor does not say clearly that CUDA is unavailable and why")
	}
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if strings.Contains(line, "missing") && !strings.Contains(line, "install") {
			t.Errorf("missing library without a fix: %q", line)
		}
	}
}

// TestDoctorCUDAProvider runs TestDoctor in a child process on ONNX Runtime 1.29
// with the CUDA plugin provider (scripts/setup-ort.sh --cuda), where one exists:
// without CUDA 13 it must name the missing library.
func TestDoctorCUDAProvider(t *testing.T) {
	if os.Getenv("DIFFUTE_TEST_CHILD") != "" {
		return // this process is the child the test started
	}
	lib := filepath.Join(ortest.CUDARuntime(t), "libonnxruntime.so")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run", "^TestDoctor$", "-test.v")
	cmd.Env = append(os.Environ(), "DIFFUTE_ORT_LIB="+lib, "DIFFUTE_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if !strings.Contains(string(out), "CUDA provider library: "+filepath.Dir(lib)) {
		t.Errorf("doctor did not find the CUDA provider beside %s", lib)
	}
	if !strings.Contains(string(out), "CUDA: available") && !strings.Contains(string(out), "CUDA: unavailable") {
		t.Errorf("doctor gave no CUDA verdict")
	}
}

// TestBenchCommand times a tiny model on the CPU through diffute bench, the
// command scripts/gpu-bench.sh runs.
func TestBenchCommand(t *testing.T) {
	lib := ortLib(t)
	var out, errb bytes.Buffer
	dir := t.TempDir()
	if err := run(t.Context(), []string{"models", "make-tiny", "--dir", dir}, testEnv(t, lib, nil), &out, &errb); err != nil {
		t.Fatalf("make-tiny: %v\n%s", err, errb.String())
	}
	out.Reset()
	model := filepath.Join(dir, "diffute", "tiny-sd")
	if err := run(t.Context(), []string{"bench", "--model", model, "--steps", "2", "--size", "64"}, testEnv(t, lib, nil), &out, &errb); err != nil {
		t.Fatalf("bench: %v\n%s", err, errb.String())
	}
	var res onnx.BenchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("bench printed %q: %v", out.String(), err)
	}
	if res.Device != "cpu" || res.Steps != 2 || res.Size != 64 || res.ImageSeconds <= 0 || res.UNetMsStep <= 0 ||
		res.StepHostMs <= 0 || res.StepHostMs >= res.UNetMsStep+res.ImageSeconds*1e3/2 {
		t.Errorf("bench result %+v", res)
	}
}

// TestBenchCases runs diffute bench on a tiny diffusers checkpoint: each --case
// prints one JSON line measured on the one loaded model, in the order given,
// with the graph it ran; --requests with --batch-requests measures concurrent
// generations sharing UNet batches.
func TestBenchCases(t *testing.T) {
	t.Parallel()
	lib := ortLib(t)
	dir := t.TempDir()
	if err := tinymodel.WriteWith(dir, tinymodel.NameSD, tinymodel.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	getenv := testEnv(t, lib, nil)
	bench := func(args ...string) []map[string]any {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append([]string{"bench", "--model", dir}, args...), getenv, &stdout, &stderr); err != nil {
			t.Fatalf("bench %v: %v (%s)", args, err, stderr.String())
		}
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("bench %v: line %q: %v", args, line, err)
			}
			out = append(out, m)
		}
		return out
	}
	res := bench("--case", "64/2/1", "--case", "96/1/2/0", "--precision", "fp16", "--check")
	if len(res) != 2 {
		t.Fatalf("%d results, want 2", len(res))
	}
	for i, want := range []struct{ size, steps, images, guidance float64 }{{64, 2, 1, 7.5}, {96, 1, 2, 0}} {
		r := res[i]
		if r["size"] != want.size || r["steps"] != want.steps || r["num_images"] != want.images || r["guidance"] != want.guidance || !(r["image_s"].(float64) > 0) {
			t.Errorf("case %d: %v, want %+v", i, r, want)
		}
		if g := r["graph"].(map[string]any); g["unet_fp16"] != true || g["cuda_kernels"] != false || g["format"] != "diffusers" {
			t.Errorf("case %d graph: %v", i, g)
		}
		// --check: the fp16 UNet against the plain fp32 graph, within half
		// precision's rounding and not identical.
		if d, ok := r["check_max_rel_diff"].(float64); !ok || d <= 0 || d > 0.05 {
			t.Errorf("case %d: check_max_rel_diff %v, want fp16 rounding (0, 0.05]", i, r["check_max_rel_diff"])
		} else {
			t.Logf("case %d: fp16 against fp32, max relative latent difference %.2g", i, d)
		}
	}
	res = bench("--steps", "1", "--size", "64", "--requests", "3", "--batch-requests", "--fused=false")
	if len(res) != 1 || res[0]["requests"] != 3.0 || res[0]["batch_requests"] != true || res[0]["graph"].(map[string]any)["fused_attention"] != false {
		t.Errorf("concurrent requests: %v", res)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--model", dir, "--case", "64/0/1"}, getenv, &stdout, &stderr)
	if err == nil || !strings.Contains(stderr.String(), "positive whole numbers") {
		t.Errorf("bad --case: err %v, stderr %q", err, stderr.String())
	}
}
