package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/diffute/diffute/onnx"
)

// runDoctor prints, one line each, what the engine can run on: the ONNX Runtime
// library and its providers, the CUDA plugin provider, each CUDA 13 library
// (found, or missing with the fix), the NVIDIA driver and the GPUs. It fails only
// when the CPU cannot run; CUDA missing is reported, not an error.
func runDoctor(_ context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "doctor", "doctor [--ort-lib PATH]")
	ortLib := fs.String("ort-lib", "", "path to libonnxruntime.so (default: DIFFUTE_ORT_LIB, next to the binary, third_party/onnxruntime, system paths)")
	if err := parseFlagsNoArgs(fs, env, args); err != nil {
		return err
	}
	w := env.stdout
	lib, err := onnx.FindLibrary(*ortLib, env.getenv)
	if err != nil {
		fmt.Fprintf(w, "ONNX Runtime: not found: %v\n", err)
		return fmt.Errorf("doctor: %w", err)
	}
	if err := onnx.InitRuntime(lib); err != nil {
		fmt.Fprintf(w, "ONNX Runtime: %s: %v\n", lib, err)
		return fmt.Errorf("doctor: %w", err)
	}
	fmt.Fprintf(w, "ONNX Runtime: %s (version %s)\n", lib, onnx.RuntimeVersion())
	if providers, err := onnx.AvailableProviders(); err != nil {
		fmt.Fprintf(w, "providers built in: unknown: %v\n", err)
	} else {
		fmt.Fprintf(w, "providers built in: %s\n", strings.Join(providers, ", "))
	}
	eng, err := onnx.New(onnx.Config{LibraryPath: lib, Device: "cpu"})
	if err != nil {
		fmt.Fprintf(w, "CPU: not usable: %v\n", err)
		return fmt.Errorf("doctor: CPU: %w", err)
	}
	_ = eng.Close()
	fmt.Fprintln(w, "CPU: ok")

	fmt.Fprintf(w, "NVIDIA driver: %s\n", nvidiaDriver())
	provider, perr := onnx.FindCUDAProvider(env.getenv)
	if perr != nil {
		fmt.Fprintf(w, "CUDA provider library: not found: %v\n", perr)
	} else {
		fmt.Fprintf(w, "CUDA provider library: %s\n", provider)
	}
	for _, l := range onnx.FindCUDALibraries(env.getenv) {
		if l.Found() {
			fmt.Fprintf(w, "CUDA library %s (%s): %s\n", l.File, l.Name, l.Path)
		} else {
			fmt.Fprintf(w, "CUDA library %s (%s): missing; %s\n", l.File, l.Name, onnx.CUDALibraryFix(l))
		}
	}
	why := perr
	if perr == nil {
		if _, err := onnx.LoadCUDAProvider(env.getenv); err != nil {
			fmt.Fprintf(w, "CUDA provider: does not load: %v\n", err)
			why = err
		} else {
			fmt.Fprintln(w, "CUDA provider: loaded")
		}
	}
	var gpus []onnx.EPDevice
	if why == nil {
		gpus, why = onnx.CUDADevices()
	}
	switch {
	case why != nil:
		fmt.Fprintln(w, "GPU devices: none")
		fmt.Fprintf(w, "CUDA: unavailable (--device cuda:N will fail; cpu works): %v\n", why)
	case len(gpus) == 0:
		fmt.Fprintln(w, "GPU devices: none")
		fmt.Fprintln(w, "CUDA: unavailable (--device cuda:N will fail; cpu works): the CUDA provider found no GPU")
	default:
		for i, g := range gpus {
			fmt.Fprintf(w, "GPU cuda:%d: %s\n", i, g)
		}
		fmt.Fprintf(w, "CUDA: available, %d device(s): use --device cuda:0\n", len(gpus))
	}
	return nil
}

// nvidiaDriver returns the loaded NVIDIA kernel driver's version line, or why
// there is none.
func nvidiaDriver() string {
	f, err := os.Open("/proc/driver/nvidia/version")
	if err != nil {
		return "none (no /proc/driver/nvidia/version: no NVIDIA GPU or driver on this machine)"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	if s.Scan() {
		return strings.Join(strings.Fields(s.Text()), " ")
	}
	return "unknown"
}
