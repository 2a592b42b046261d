package onnxgraph_test

import (
	"bytes"
	"encoding/binary"
	"github.com/diffute/diffute/internal/ortest"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/diffute/diffute/onnxgraph"
)

// requireORT initialises ONNX Runtime once for the package (package ortest).
func requireORT(t *testing.T) {
	t.Helper()
	ortest.Require(t)
}

func marshal(t *testing.T, g *onnxgraph.Graph) []byte {
	t.Helper()
	b, err := onnxgraph.NewModel(g).Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return b
}

// run runs model once on inputs, filling the preallocated outputs.
func run(t *testing.T, model []byte, inNames, outNames []string, in, out []ort.Value) {
	t.Helper()
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(model, inNames, outNames, nil)
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer s.Destroy()
	if err := s.Run(in, out); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func tensor[T ort.TensorData](t *testing.T, shape ort.Shape, data []T) *ort.Tensor[T] {
	t.Helper()
	v, err := ort.NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Destroy() })
	return v
}

func empty[T ort.TensorData](t *testing.T, shape ort.Shape) *ort.Tensor[T] {
	t.Helper()
	v, err := ort.NewEmptyTensor[T](shape)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Destroy() })
	return v
}

func near(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Fatalf("%s[%d] = %v, want %v (all: %v)", what, i, got[i], want[i], got)
		}
	}
}

func TestMatMulAddDynamicBatch(t *testing.T) {
	t.Parallel()
	requireORT(t)
	g := onnxgraph.NewGraph("affine")
	g.Input("x", onnxgraph.Float, onnxgraph.Sym("batch"), onnxgraph.Fixed(3))
	g.Output("y", onnxgraph.Float, onnxgraph.Sym("batch"), onnxgraph.Fixed(2))
	g.Initializer("w", onnxgraph.Float, []int64{3, 2}, []float32{1, 2, 3, 4, 5, 6})
	g.Initializer("b", onnxgraph.Float, []int64{2}, []float32{0.5, -1})
	g.Node("MatMul", []string{"x", "w"}, []string{"xw"})
	g.Node("Add", []string{"xw", "b"}, []string{"y"})
	model := marshal(t, g)

	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Name != "x" || ins[0].DataType != ort.TensorElementDataTypeFloat ||
		len(ins[0].Dimensions) != 2 || ins[0].Dimensions[0] != -1 || ins[0].Dimensions[1] != 3 {
		t.Fatalf("inputs = %+v, want x float [-1 3]", ins)
	}
	if len(outs) != 1 || outs[0].Name != "y" {
		t.Fatalf("outputs = %+v, want y", outs)
	}

	for _, batch := range []int64{1, 2} {
		x := []float32{1, 0, -1, 2, 1, 0}[:3*batch]
		y := empty[float32](t, ort.NewShape(batch, 2))
		run(t, model, []string{"x"}, []string{"y"}, []ort.Value{tensor(t, ort.NewShape(batch, 3), x)}, []ort.Value{y})
		want := []float32{1 - 5 + 0.5, 2 - 6 - 1, 2 + 3 + 0.5, 4 + 4 - 1}[:2*batch]
		near(t, "y", y.GetData(), want)
	}
}

func TestGatherInt32Indices(t *testing.T) {
	t.Parallel()
	requireORT(t)
	g := onnxgraph.NewGraph("gather")
	g.Input("ids", onnxgraph.Int32, onnxgraph.Sym("n"))
	g.Output("emb", onnxgraph.Float, onnxgraph.Sym("n"), onnxgraph.Fixed(2))
	g.Initializer("table", onnxgraph.Float, []int64{4, 2}, []float32{0, 1, 10, 11, 20, 21, 30, 31})
	g.Node("Gather", []string{"table", "ids"}, []string{"emb"}, onnxgraph.AttrInt("axis", 0))
	out := empty[float32](t, ort.NewShape(3, 2))
	run(t, marshal(t, g), []string{"ids"}, []string{"emb"},
		[]ort.Value{tensor(t, ort.NewShape(3), []int32{3, 0, 2})}, []ort.Value{out})
	near(t, "emb", out.GetData(), []float32{30, 31, 0, 1, 20, 21})
}

func TestConvWithAttributes(t *testing.T) {
	t.Parallel()
	requireORT(t)
	// A 1x1 convolution from 2 to 1 channels with bias, then DepthToSpace.
	g := onnxgraph.NewGraph("conv")
	g.Input("x", onnxgraph.Float, onnxgraph.Sym("b"), onnxgraph.Fixed(2), onnxgraph.Sym("h"), onnxgraph.Sym("w"))
	g.Output("y", onnxgraph.Float, onnxgraph.Sym("b"), onnxgraph.Fixed(1), onnxgraph.Sym("h"), onnxgraph.Sym("w"))
	g.Initializer("k", onnxgraph.Float, []int64{1, 2, 1, 1}, []float32{2, -1})
	g.Initializer("bias", onnxgraph.Float, []int64{1}, []float32{0.25})
	g.Node("Conv", []string{"x", "k", "bias"}, []string{"y"},
		onnxgraph.AttrInts("kernel_shape", 1, 1), onnxgraph.AttrInts("pads", 0, 0, 0, 0), onnxgraph.AttrString("auto_pad", "NOTSET"))
	// Channel 0 then channel 1, each 2x2.
	x := []float32{1, 2, 3, 4, 1, 1, 1, 1}
	y := empty[float32](t, ort.NewShape(1, 1, 2, 2))
	run(t, marshal(t, g), []string{"x"}, []string{"y"}, []ort.Value{tensor(t, ort.NewShape(1, 2, 2, 2), x)}, []ort.Value{y})
	near(t, "y", y.GetData(), []float32{1.25, 3.25, 5.25, 7.25})
}

func TestCastToFloat16Output(t *testing.T) {
	t.Parallel()
	requireORT(t)
	g := onnxgraph.NewGraph("half")
	g.Input("x", onnxgraph.Float, onnxgraph.Fixed(4))
	g.Output("h", onnxgraph.Float16, onnxgraph.Fixed(4))
	// An fp16 initializer added in half precision, to check the stored bits too.
	g.Initializer("one", onnxgraph.Float16, []int64{1}, []float32{1})
	g.Node("Cast", []string{"x"}, []string{"xh"}, onnxgraph.AttrInt("to", int64(onnxgraph.Float16)))
	g.Node("Add", []string{"xh", "one"}, []string{"h"})
	buf := make([]byte, 8)
	h, err := ort.NewCustomDataTensor(ort.NewShape(4), buf, ort.TensorElementDataTypeFloat16)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Destroy()
	run(t, marshal(t, g), []string{"x"}, []string{"h"},
		[]ort.Value{tensor(t, ort.NewShape(4), []float32{0, 0.5, -3, 1000})}, []ort.Value{h})
	got := make([]float32, 4)
	for i := range got {
		got[i] = onnxgraph.Float16Value(binary.LittleEndian.Uint16(h.GetData()[2*i:]))
	}
	near(t, "h", got, []float32{1, 1.5, -2, 1001})
}

func TestScalarInput(t *testing.T) {
	t.Parallel()
	requireORT(t)
	g := onnxgraph.NewGraph("scale")
	g.Input("s", onnxgraph.Float) // rank 0
	g.Output("y", onnxgraph.Float, onnxgraph.Fixed(3))
	g.Initializer("v", onnxgraph.Float, []int64{3}, []float32{1, 2, 3})
	g.Node("Mul", []string{"v", "s"}, []string{"y"})
	model := marshal(t, g)
	ins, _, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins[0].Dimensions) != 0 {
		t.Fatalf("s has dims %v, want rank 0", ins[0].Dimensions)
	}
	s, err := ort.NewScalar(float32(-2))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	y := empty[float32](t, ort.NewShape(3))
	run(t, model, []string{"s"}, []string{"y"}, []ort.Value{s}, []ort.Value{y})
	near(t, "y", y.GetData(), []float32{-2, -4, -6})
}

func TestExternalData(t *testing.T) {
	t.Parallel()
	requireORT(t)
	g := onnxgraph.NewGraph("ext")
	g.Input("x", onnxgraph.Float, onnxgraph.Fixed(1), onnxgraph.Fixed(300))
	g.Output("y", onnxgraph.Float, onnxgraph.Fixed(1), onnxgraph.Fixed(1))
	big := make([]float32, 300) // 1200 bytes: external
	for i := range big {
		big[i] = float32(i % 7)
	}
	g.Initializer("w", onnxgraph.Float, []int64{300, 1}, big)
	g.Initializer("b", onnxgraph.Float, []int64{1}, []float32{3}) // 4 bytes: inline
	g.Node("MatMul", []string{"x", "w"}, []string{"xw"})
	g.Node("Add", []string{"xw", "b"}, []string{"y"})
	model, data, err := onnxgraph.NewModel(g).MarshalExternal("weights.pb")
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 1200 {
		t.Fatalf("external data is %d bytes, want 1200 (only w)", len(data))
	}
	if !bytes.Contains(model, []byte("weights.pb")) || bytes.Contains(model, data[4:64]) {
		t.Fatal("model should name weights.pb and not hold w's bytes")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(path, model, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "weights.pb"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ort.NewDynamicAdvancedSession(path, []string{"x"}, []string{"y"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	x := make([]float32, 300)
	for i := range x {
		x[i] = 1
	}
	y := empty[float32](t, ort.NewShape(1, 1))
	if err := s.Run([]ort.Value{tensor(t, ort.NewShape(1, 300), x)}, []ort.Value{y}); err != nil {
		t.Fatal(err)
	}
	var want float32 = 3
	for _, v := range big {
		want += v
	}
	near(t, "y", y.GetData(), []float32{want})
}

func TestMarshalIsDeterministic(t *testing.T) {
	t.Parallel()
	build := func() *onnxgraph.Model {
		g := onnxgraph.NewGraph("g")
		g.Input("x", onnxgraph.Float, onnxgraph.Sym("n"))
		g.Output("y", onnxgraph.Float, onnxgraph.Sym("n"))
		g.Initializer("c", onnxgraph.Float, []int64{600}, make([]float32, 600))
		g.Node("ReduceSum", []string{"c"}, []string{"s"}, onnxgraph.AttrInt("keepdims", 0))
		g.Node("Add", []string{"x", "s"}, []string{"y"})
		return onnxgraph.NewModel(g)
	}
	a, ad, err := build().MarshalExternal("d")
	if err != nil {
		t.Fatal(err)
	}
	b, bd, err := build().MarshalExternal("d")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) || !bytes.Equal(ad, bd) {
		t.Fatal("two marshals of the same graph differ")
	}
}

func TestBuilderErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		build func(g *onnxgraph.Graph)
		want  string
	}{
		{"undefined input", func(g *onnxgraph.Graph) {
			g.Output("y", onnxgraph.Float)
			g.Node("Relu", []string{"nope"}, []string{"y"})
		}, `reads "nope"`},
		{"missing output", func(g *onnxgraph.Graph) {
			g.Input("x", onnxgraph.Float)
			g.Output("y", onnxgraph.Float)
		}, `output "y" is never produced`},
		{"short data", func(g *onnxgraph.Graph) {
			g.Initializer("w", onnxgraph.Float, []int64{2, 2}, []float32{1, 2, 3})
		}, "3 elements for dims [2 2], want 4"},
		{"wrong type", func(g *onnxgraph.Graph) {
			g.Initializer("w", onnxgraph.Int64, []int64{1}, []float32{1})
		}, "does not suit element type INT64"},
		{"bad attribute tensor", func(g *onnxgraph.Graph) {
			g.Output("y", onnxgraph.Float)
			g.Node("Constant", nil, []string{"y"}, onnxgraph.AttrTensor("value", onnxgraph.Float, []int64{2}, []float32{1}))
		}, `attribute "value"`},
		{"written twice", func(g *onnxgraph.Graph) {
			g.Input("x", onnxgraph.Float)
			g.Output("y", onnxgraph.Float)
			g.Node("Relu", []string{"x"}, []string{"y"})
			g.Node("Relu", []string{"x"}, []string{"y"})
		}, `writes "y", which is already defined`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g := onnxgraph.NewGraph("bad")
			c.build(g)
			_, err := onnxgraph.NewModel(g).Marshal()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Marshal error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestFloat16Bits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		f    float32
		bits uint16
	}{
		{0, 0x0000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},
		{1e6, 0x7c00},                         // overflow to +Inf
		{float32(math.Inf(-1)), 0xfc00},       // -Inf
		{5.960464477539063e-08, 0x0001},       // smallest subnormal
		{1.0009765625, 0x3c01},                // 1 + 2^-10, exact
		{1.00048828125, 0x3c00},               // halfway, ties to even (down)
		{1.00146484375, 0x3c02},               // halfway, ties to even (up)
		{6.103515625e-05, 0x0400},             // smallest normal
		{float32(math.Float32frombits(1)), 0}, // far below half's range
	}
	for _, c := range cases {
		if got := onnxgraph.Float16Bits(c.f); got != c.bits {
			t.Errorf("Float16Bits(%v) = %#04x, want %#04x", c.f, got, c.bits)
		}
	}
	// Every finite half value survives a round trip through float32.
	for h := 0; h < 0x10000; h++ {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		if got := onnxgraph.Float16Bits(onnxgraph.Float16Value(uint16(h))); got != uint16(h) {
			t.Fatalf("round trip of %#04x gave %#04x", h, got)
		}
	}
	if v := onnxgraph.Float16Value(0x7e00); !math.IsNaN(float64(v)) {
		t.Fatalf("Float16Value(NaN bits) = %v", v)
	}
}
