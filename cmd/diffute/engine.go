package main

import (
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/onnx"
)

// engineFlags configure the ONNX Runtime engine; serve, generate and demo share them.
type engineFlags struct {
	ortLib          string
	device          string
	intraOpThreads  int
	interOpThreads  int
	maxLoadedModels int
	maxBatchBytes   int64
	rng             string
	precision       string
	fused           bool
	cudaOptions     cudaOptionFlag
	batchRequests   bool
	batchWait       time.Duration
}

func (f *engineFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.ortLib, "ort-lib", "", "path to libonnxruntime.so (default: DIFFUTE_ORT_LIB, next to the binary, third_party/onnxruntime, system paths)")
	fs.StringVar(&f.device, "device", "cpu", "execution device: cpu or cuda:N")
	fs.IntVar(&f.intraOpThreads, "intra-op-threads", 0, "ONNX Runtime threads inside one operator (0: its default)")
	fs.IntVar(&f.interOpThreads, "inter-op-threads", 0, "ONNX Runtime threads across operators (0: its default)")
	fs.IntVar(&f.maxLoadedModels, "max-loaded-models", 2, "how many pipelines stay loaded (least recently used is unloaded)")
	fs.Int64Var(&f.maxBatchBytes, "max-batch-bytes", onnx.DefaultMaxBatchBytes, "memory budget of one UNet call; images of a prompt beyond it run in further calls")
	fs.StringVar(&f.rng, "rng", diffute.RNGTorch, "noise generator of requests that name none: "+
		"torch (torch.randn with a CPU generator, bit for bit) or cuda (torch.randn on an NVIDIA GPU)")
	fs.StringVar(&f.precision, "precision", onnx.PrecisionAuto, "the UNet's compute type for checkpoints whose graphs Diffute builds: "+
		"auto (fp16 on CUDA, fp32 on the CPU), fp32 or fp16; text encoders and the VAE stay fp32")
	fs.BoolVar(&f.fused, "fused", true, "use ONNX Runtime's fused operators (attention everywhere; GroupNorm and BiasSplitGelu on CUDA); false: standard operators only")
	fs.BoolVar(&f.batchRequests, "batch-requests", false, "let concurrent jobs of one model with the same size, steps, scheduler and guidance share UNet batches "+
		"(each image keeps its seed; pays on a GPU at small sizes, see docs/benchmarks.md)")
	fs.DurationVar(&f.batchWait, "batch-wait", 5*time.Millisecond, "with --batch-requests, how long a batch waits for more jobs before it starts")
	f.cudaOptions = cudaOptionFlag{}
	fs.Var(f.cudaOptions, "cuda-option", "a CUDA execution provider option KEY=VALUE, repeatable (e.g. prefer_nhwc=1); default: ONNX Runtime's")
}

// checkChoices rejects an unknown --rng or --precision before anything starts.
func (f *engineFlags) checkChoices() error {
	if !slices.Contains(diffute.RNGNames, f.rng) {
		return fmt.Errorf("--rng %q: want one of %s", f.rng, strings.Join(diffute.RNGNames, ", "))
	}
	if !slices.Contains(onnx.Precisions, f.precision) {
		return fmt.Errorf("--precision %q: want one of %s", f.precision, strings.Join(onnx.Precisions, ", "))
	}
	return nil
}

// open finds the ONNX Runtime library and starts the engine over models from src.
func (f *engineFlags) open(src *modelSource, logger *slog.Logger) (*onnx.Engine, error) {
	if err := f.checkChoices(); err != nil {
		return nil, err
	}
	lib, err := onnx.FindLibrary(f.ortLib, src.getenv)
	if err != nil {
		return nil, err
	}
	eng, err := onnx.New(onnx.Config{
		LibraryPath:     lib,
		Device:          f.device,
		IntraOpThreads:  f.intraOpThreads,
		InterOpThreads:  f.interOpThreads,
		MaxLoadedModels: f.maxLoadedModels,
		MaxBatchBytes:   f.maxBatchBytes,
		Resolve:         src.Resolve,
		Logger:          logger,
		RNG:             f.rng,
		Precision:       f.precision,
		Unfused:         !f.fused,
		CUDAOptions:     f.cudaOptions,
		BatchRequests:   f.batchRequests,
		BatchWait:       f.batchWait,
	})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return eng, nil
}
