package onnx

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/diffute/diffute/sdgraph"
)

// kernelsUNet is a one-level UNet as wide as SD 1.5's first level (320
// channels in 32 groups, a GEGLU of 2·1280): the shapes the CUDA provider's
// GroupNorm and BiasSplitGelu kernels take, so the builder emits both.
const kernelsUNet = `{"block_out_channels":[320],"down_block_types":["CrossAttnDownBlock2D"],
"up_block_types":["CrossAttnUpBlock2D"],"layers_per_block":1,"attention_head_dim":8,"cross_attention_dim":64}`

// openWithZeroWeights builds component from config with o and opens it on
// the CPU provider, every weight zero.
func openWithZeroWeights(t *testing.T, config string, o sdgraph.Options) error {
	t.Helper()
	g, err := sdgraph.Build("unet", []byte(config), o)
	if err != nil {
		t.Fatal(err)
	}
	bc := &builtComponent{rel: "unet", graph: g}
	t.Cleanup(bc.release)
	for _, p := range g.Params {
		buf, err := anonymous(p.DType.Size() * int(numel(p.Shape)))
		if err != nil {
			t.Fatal(err)
		}
		bc.buffers = append(bc.buffers, buf)
		if err := bc.supplied.add(p.Name, buf, int(p.DType), p.GraphShape); err != nil {
			t.Fatal(err)
		}
	}
	s, err := bc.modelInfo().newSession(unetInputNames[:inTextEmbeds], []string{"out_sample"}, sessionConfig{device: "cpu"})
	if err == nil {
		_ = s.Destroy()
	}
	return err
}

// TestCUDAKernelGraphResolves: the graph with the CUDA provider's fused
// kernels passes ONNX Runtime's schema, type and shape checks (which run over
// the whole graph before kernels are assigned) and fails on the CPU provider
// only for want of those kernels; the same UNet without them opens. Its
// numbers can only be checked on a GPU (scripts/gpu-bench.sh).
func TestCUDAKernelGraphResolves(t *testing.T) {
	requireORT(t)
	for _, half := range []bool{false, true} {
		o := sdgraph.Options{FusedAttention: true, Float16: half}
		if err := openWithZeroWeights(t, kernelsUNet, o); err != nil {
			t.Fatalf("float16=%t, portable operators: %v", half, err)
		}
		o.CUDAKernels = true
		err := openWithZeroWeights(t, kernelsUNet, o)
		if err == nil {
			t.Fatalf("float16=%t: the CUDA-kernel graph opened on the CPU provider, which has no GroupNorm or BiasSplitGelu", half)
		}
		// "Could not find an implementation for GroupNorm(1) node …" in float32;
		// "Failed to find kernel for com.microsoft.GroupNorm(1) …" in float16,
		// after the cast pass has run.
		msg := strings.ToLower(err.Error())
		if !missingKernel(err) || !strings.Contains(msg, "groupnorm") && !strings.Contains(msg, "biassplitgelu") {
			t.Errorf("float16=%t: err = %v, want only a missing GroupNorm or BiasSplitGelu kernel", half, err)
		} else {
			t.Logf("float16=%t: %v", half, err)
		}
	}
}

// TestCUDAKernelFallback: a component whose CUDA-kernel graph the provider
// refuses is built again with portable operators, and the pipeline says why.
// The refusal is ONNX Runtime's own: the CPU provider has neither kernel.
func TestCUDAKernelFallback(t *testing.T) {
	requireORT(t)
	p := &Pipeline{built: &builtSource{graph: sdgraph.Options{FusedAttention: true, CUDAKernels: true}}}
	var opened []bool
	err := p.openKernelGraph(func() error {
		opened = append(opened, p.built.graph.CUDAKernels)
		return openWithZeroWeights(t, kernelsUNet, p.built.graph)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(opened) != 2 || !opened[0] || opened[1] {
		t.Errorf("opened with CUDA kernels %v, want [true false]", opened)
	}
	g := p.Graph()
	if g.CUDAKernels || !strings.Contains(g.KernelsMissing, "GroupNorm") && !strings.Contains(g.KernelsMissing, "BiasSplitGelu") {
		t.Errorf("graph %+v, want the CUDA kernels off and the missing one named", g)
	}
	// Any other failure is not retried.
	p.built.graph.CUDAKernels = true
	calls := 0
	if err := p.openKernelGraph(func() error { calls++; return os.ErrNotExist }); !errors.Is(err, os.ErrNotExist) || calls != 1 {
		t.Errorf("err %v after %d calls, want the first error after 1", err, calls)
	}
}
