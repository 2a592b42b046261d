package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/diffute/diffute/onnx"
)

// runBench measures one model folder on one device (onnx.Bench) and prints the
// result as one JSON line: scripts/gpu-bench.sh runs it on GPU machines, which
// have the binary but no Go toolchain.
func runBench(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "bench", "bench --model DIR [--device cpu|cuda:N] [--steps N] [--size PX] [--images N] [--guidance G] [--precision auto|fp32|fp16] [--fused=false] [--cuda-option KEY=VALUE] [--requests N [--batch-requests]] [--case SIZE/STEPS/IMAGES[/GUIDANCE] ...] [--check]")
	model := fs.String("model", "", "model folder (e.g. written by diffute models make-random)")
	ortLib := fs.String("ort-lib", "", "path to libonnxruntime.so (default: DIFFUTE_ORT_LIB, next to the binary, third_party/onnxruntime, system paths)")
	device := fs.String("device", "cpu", "execution device: cpu or cuda:N")
	steps := fs.Int("steps", 4, "denoising steps of the timed generation")
	size := fs.Int("size", 0, "width and height in pixels (0: 512, or 1024 for SDXL)")
	images := fs.Int("images", 1, "images per generation (the UNet batch is twice this with guidance)")
	guidance := fs.Float64("guidance", -1, "guidance scale (-1: the model's default; 0 turns classifier-free guidance off)")
	precision := fs.String("precision", onnx.PrecisionAuto, "the UNet's compute type in built graphs: auto (fp16 on CUDA, fp32 on the CPU), fp32 or fp16")
	fused := fs.Bool("fused", true, "use ONNX Runtime's fused operators (attention everywhere; GroupNorm and BiasSplitGelu on CUDA); false builds the plain graph")
	requests := fs.Int("requests", 1, "generations run at once in the timed part (throughput)")
	batch := fs.Bool("batch-requests", false, "let the concurrent generations share UNet batches")
	maxBatch := fs.Int64("max-batch-bytes", onnx.DefaultMaxBatchBytes, "memory budget of one UNet call; a larger batch runs in several (unet_batches)")
	check := fs.Bool("check", false, "also compare each case's latents with the plain fp32 graph's on the same device (check_max_rel_diff)")
	var cases benchCases
	fs.Var(&cases, "case", "a shape to measure on the one loaded model, SIZE/STEPS/IMAGES[/GUIDANCE] (repeatable; one JSON line each); "+
		"replaces --size, --steps, --images and --guidance")
	cuda := cudaOptionFlag{}
	fs.Var(cuda, "cuda-option", "a CUDA execution provider option KEY=VALUE (repeatable), e.g. prefer_nhwc=1")
	if err := parseFlagsNoArgs(fs, env, args); err != nil {
		return err
	}
	if *model == "" {
		return errors.New("bench: --model is required")
	}
	lib, err := onnx.FindLibrary(*ortLib, env.getenv)
	if err != nil {
		return err
	}
	if err := onnx.InitRuntime(lib); err != nil {
		return err
	}
	opts := onnx.BenchOptions{Device: *device, Steps: *steps, Size: *size, NumImages: *images, Precision: *precision, Unfused: !*fused, CUDA: cuda,
		Requests: *requests, Batch: *batch, Cases: cases, Check: *check, MaxBatchBytes: *maxBatch}
	if *guidance >= 0 {
		opts.Guidance = guidance
	}
	err = onnx.Bench(ctx, *model, opts, func(res onnx.BenchResult) {
		b, _ := json.Marshal(res)
		fmt.Fprintln(env.stdout, string(b))
	})
	if err != nil {
		return fmt.Errorf("bench %s on %s: %w", *model, *device, err)
	}
	return nil
}

// benchCases collects repeated --case SIZE/STEPS/IMAGES[/GUIDANCE] flags.
type benchCases []onnx.BenchCase

func (c *benchCases) String() string { return fmt.Sprint(len(*c), " cases") }

func (c *benchCases) Set(s string) error {
	parts := strings.Split(s, "/")
	if len(parts) != 3 && len(parts) != 4 {
		return fmt.Errorf("want SIZE/STEPS/IMAGES[/GUIDANCE], e.g. 1024/30/1 or 512/1/4/0")
	}
	var n [3]int
	for i := range n {
		v, err := strconv.Atoi(parts[i])
		if err != nil || v <= 0 {
			return fmt.Errorf("%q: want positive whole numbers SIZE/STEPS/IMAGES", s)
		}
		n[i] = v
	}
	bc := onnx.BenchCase{Size: n[0], Steps: n[1], NumImages: n[2]}
	if len(parts) == 4 {
		g, err := strconv.ParseFloat(parts[3], 64)
		if err != nil || g < 0 {
			return fmt.Errorf("%q: GUIDANCE must be a number ≥ 0", s)
		}
		bc.Guidance = &g
	}
	*c = append(*c, bc)
	return nil
}

// cudaOptionFlag collects repeated --cuda-option KEY=VALUE flags.
type cudaOptionFlag map[string]string

func (f cudaOptionFlag) String() string {
	var parts []string
	for k, v := range f {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (f cudaOptionFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, e.g. prefer_nhwc=1")
	}
	f[k] = v
	return nil
}
