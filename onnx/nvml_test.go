package onnx

import (
	"os"
	"strings"
	"testing"
)

// TestGPUs reads the GPUs' memory through the driver's NVML. Without an NVIDIA
// driver the error is one line naming the library, and the test then skips: it
// needs a GPU to check the figures.
func TestGPUs(t *testing.T) {
	gpus, err := GPUs()
	if err != nil {
		if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "libnvidia-ml.so.1") {
			t.Fatalf("error %q: want one line naming libnvidia-ml.so.1", err)
		}
		if _, statErr := os.Stat("/dev/nvidia0"); statErr == nil {
			t.Fatalf("a GPU is present (/dev/nvidia0) but NVML failed: %v", err)
		}
		t.Skipf("no GPU: %v", err)
	}
	if len(gpus) == 0 {
		t.Fatal("NVML loaded but lists no GPU")
	}
	for _, g := range gpus {
		if g.Total == 0 || g.Used > g.Total || g.Name == "" {
			t.Errorf("GPU %d: %+v", g.Index, g)
		}
	}
}
