package sdgraph

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	og "github.com/diffute/diffute/onnxgraph"
)

// Layout says how the graph uses a stored weight. No layout moves bytes: the
// loader can always hand ONNX Runtime the checkpoint's own data (converted to
// the compute type where it differs).
type Layout int

const (
	// AsStored: the graph reads the weight with the checkpoint's shape.
	AsStored Layout = iota
	// Reshaped: the same elements in another shape (GraphShape), e.g. a norm
	// scale [C] read as [C, 1, 1]; the bytes do not move.
	Reshaped
)

// Param is one weight a graph needs.
type Param struct {
	Name       string  // the checkpoint's key
	Shape      []int64 // the shape the checkpoint must store
	Layout     Layout
	GraphShape []int64 // the shape the graph reads
	// DType is the element type the graph reads: the graph's compute type, or
	// Float where an operator takes float32 whatever it computes in (a fused
	// GroupNorm's scale and bias).
	DType og.DType
}

// IO is one graph input or output. A dim of -1 is symbolic (batch, height…).
type IO struct {
	Name  string
	DType og.DType
	Dims  []int64
}

// Graph is a built component: the ONNX model bytes (no weights inside) and the
// weights to supply.
type Graph struct {
	Model   []byte
	Params  []Param
	Inputs  []IO
	Outputs []IO
}

// ParamBytes is the number of bytes the graph's weights take in the types it
// reads them.
func (g *Graph) ParamBytes() int64 {
	var n int64
	for _, p := range g.Params {
		n += int64(p.DType.Size()) * numel(p.Shape)
	}
	return n
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// builder accumulates one graph. Shapes are tracked only where the builder
// needs them (channel counts come from the config, like diffusers' modules).
type builder struct {
	g      *og.Graph
	params []Param
	seen   map[string]bool
	n      int
	dtype  og.DType
	ios    []IO
	outs   []IO
	consts map[string]string
	opts   Options
	// upcast computes the attention scores and their softmax in float32 in a
	// float16 graph (diffusers' upcast_attention, SD 2.x).
	upcast bool
	err    error
}

// Options choose how a graph computes, never what: every choice gives the
// same results within float rounding.
type Options struct {
	// FusedAttention computes attention with ONNX Runtime's MultiHeadAttention
	// (flash or memory-efficient kernels on CUDA; no [B, heads, T, S] score
	// tensor held by the graph) instead of MatMul, Softmax, MatMul. On the CPU
	// it runs as fast and cuts SD 1.5's peak memory at 512² by 2 GB
	// (docs/benchmarks.md); the loader uses it unless told otherwise.
	FusedAttention bool
	// Float16 computes in IEEE half precision, as diffusers' torch_dtype=float16
	// does: weights and activations are float16, the inputs and outputs stay
	// float32 (cast at the graph's edges), and what half precision cannot hold
	// is computed in float32 first: the sinusoidal timestep and time-id
	// embeddings (timesteps up to 999 lose their fraction in float16), and with
	// upcast_attention the attention scores.
	Float16 bool
	// CUDAKernels uses operators ONNX Runtime implements only in its CUDA
	// provider, where their kernels take the shapes: GroupNorm (NHWC, with the
	// SiLU that follows it) and BiasSplitGelu (GEGLU's bias, split and GELU).
	// A graph built with it runs on the CUDA provider only.
	CUDAKernels bool
}

// failf records the builder's first error (an unsupported config value).
func (b *builder) failf(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf(format, args...)
	}
}

func newBuilder(name string, o Options) *builder {
	dtype := og.Float
	if o.Float16 {
		dtype = og.Float16
	}
	return &builder{g: og.NewGraph(name), seen: map[string]bool{}, dtype: dtype, consts: map[string]string{}, opts: o}
}

// compute casts a float32 value (a graph input, an embedding computed in
// float32) to the compute type.
func (b *builder) compute(x string) string {
	if b.dtype == og.Float {
		return x
	}
	return b.op("Cast", []string{x}, og.AttrInt("to", int64(b.dtype)))
}

// toFloat casts a value of the compute type to float32.
func (b *builder) toFloat(x string) string {
	if b.dtype == og.Float {
		return x
	}
	return b.op("Cast", []string{x}, og.AttrInt("to", int64(og.Float)))
}

func (b *builder) input(name string, dtype og.DType, dims ...int64) string {
	b.g.Input(name, dtype, b.dims(dims)...)
	b.ios = append(b.ios, IO{Name: name, DType: dtype, Dims: dims})
	return name
}

// output declares a float32 output: a graph computing in float16 casts to it.
func (b *builder) output(value, name string, dims ...int64) {
	if b.dtype == og.Float {
		b.g.Node("Identity", []string{value}, []string{name})
	} else {
		b.g.Node("Cast", []string{value}, []string{name}, og.AttrInt("to", int64(og.Float)))
	}
	b.g.Output(name, og.Float, b.dims(dims)...)
	b.outs = append(b.outs, IO{Name: name, DType: og.Float, Dims: dims})
}

// dims turns -1 into symbolic dims named by position ("d0", "d1", …).
func (b *builder) dims(dims []int64) []og.Dim {
	out := make([]og.Dim, len(dims))
	for i, d := range dims {
		if d < 0 {
			out[i] = og.Sym("d" + strconv.Itoa(i))
		} else {
			out[i] = og.Fixed(d)
		}
	}
	return out
}

func (b *builder) finish() (*Graph, error) {
	if b.err != nil {
		return nil, b.err
	}
	m := og.NewModel(b.g)
	bytes, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	return &Graph{Model: bytes, Params: b.params, Inputs: b.ios, Outputs: b.outs}, nil
}

// weight declares a stored weight used as stored, in the compute type.
func (b *builder) weight(name string, shape ...int64) string {
	return b.param(Param{Name: name, Shape: shape, Layout: AsStored, GraphShape: shape, DType: b.dtype})
}

// weightAs declares a stored weight read in another shape of the same size.
func (b *builder) weightAs(name string, stored []int64, graph ...int64) string {
	return b.param(Param{Name: name, Shape: stored, Layout: Reshaped, GraphShape: graph, DType: b.dtype})
}

// weightFloat declares a stored weight the graph reads as float32 whatever its
// compute type.
func (b *builder) weightFloat(name string, shape ...int64) string {
	return b.param(Param{Name: name, Shape: shape, Layout: AsStored, GraphShape: shape, DType: og.Float})
}

func (b *builder) param(p Param) string {
	if b.seen[p.Name] {
		return p.Name
	}
	b.seen[p.Name] = true
	b.params = append(b.params, p)
	b.g.SuppliedInitializer(p.Name, p.DType, p.GraphShape)
	return p.Name
}

func (b *builder) tmp() string {
	b.n++
	return "t" + strconv.Itoa(b.n)
}

// op adds a node with one output and returns the output's name.
func (b *builder) op(op string, inputs []string, attrs ...og.Attr) string {
	out := b.tmp()
	b.g.Node(op, inputs, []string{out}, attrs...)
	return out
}

// ints is an int64 constant, shared by value.
func (b *builder) ints(v ...int64) string {
	key := fmt.Sprint("i", v)
	if name, ok := b.consts[key]; ok {
		return name
	}
	name := "const_" + strconv.Itoa(len(b.consts))
	b.g.Initializer(name, og.Int64, []int64{int64(len(v))}, v)
	b.consts[key] = name
	return name
}

// scalar is a float constant of the compute type (rank 0), shared by value.
func (b *builder) scalar(v float32) string { return b.scalarOf(b.dtype, v) }

// scalarOf is a float constant of dtype (rank 0), shared by value.
func (b *builder) scalarOf(dtype og.DType, v float32) string {
	key := fmt.Sprint("f", dtype, math.Float32bits(v))
	if name, ok := b.consts[key]; ok {
		return name
	}
	name := "const_" + strconv.Itoa(len(b.consts))
	b.g.Initializer(name, dtype, nil, []float32{v})
	b.consts[key] = name
	return name
}

// floats is a float constant of the compute type.
func (b *builder) floats(dims []int64, v []float32) string {
	return b.floatsOf(b.dtype, dims, v)
}

// floatsOf is a float constant of dtype (Float or Float16).
func (b *builder) floatsOf(dtype og.DType, dims []int64, v []float32) string {
	name := "const_" + strconv.Itoa(len(b.consts))
	b.consts[name] = name
	b.g.Initializer(name, dtype, dims, v)
	return name
}

// linear is torch.nn.Linear: x[..., in] · Wᵀ + b, the weight read as stored
// [out, in] by ONNX Runtime's FusedMatMul with transB, so no weight is ever
// transposed at load.
func (b *builder) linear(x, prefix string, in, out int64, bias bool) string {
	w := b.weight(prefix+".weight", out, in)
	y := b.tmp()
	b.g.NodeIn(og.ContribDomain, "FusedMatMul", []string{x, w}, []string{y}, og.AttrInt("transB", 1), og.AttrFloat("alpha", 1))
	if bias {
		y = b.op("Add", []string{y, b.weight(prefix+".bias", out)})
	}
	return y
}

// conv is torch.nn.Conv2d with a square kernel and bias.
func (b *builder) conv(x, prefix string, in, out, k, stride, pad int64) string {
	w := b.weight(prefix+".weight", out, in, k, k)
	bias := b.weight(prefix+".bias", out)
	return b.op("Conv", []string{x, w, bias},
		og.AttrInts("kernel_shape", k, k), og.AttrInts("strides", stride, stride),
		og.AttrInts("pads", pad, pad, pad, pad))
}

// groupNorm is torch.nn.GroupNorm on [N, C, H, W], followed by SiLU when silu
// is set: instance normalisation over [N, groups, C/groups·H·W], then the
// per-channel affine. With CUDAKernels it is ONNX Runtime's GroupNorm, which
// takes NHWC and applies the SiLU in the same pass, between two transposes,
// for the shapes every release's kernel takes (32 groups, Stable Diffusion's
// widths; at most 32 batch rows, which the pipeline keeps to); other shapes
// take the portable form.
func (b *builder) groupNorm(x, prefix string, channels, groups int64, eps float32, silu bool) string {
	if groups <= 0 || channels%groups != 0 {
		b.failf("%s: %d channels do not split into norm_num_groups %d", prefix, channels, groups)
		return x
	}
	if b.opts.CUDAKernels && groups == 32 && slices.Contains(groupNormWidths, channels) {
		act := int64(0)
		if silu {
			act = 1
		}
		nhwc := b.op("Transpose", []string{x}, og.AttrInts("perm", 0, 2, 3, 1))
		n := b.tmp()
		b.g.NodeIn(og.ContribDomain, "GroupNorm", []string{nhwc, b.weightFloat(prefix+".weight", channels), b.weightFloat(prefix+".bias", channels)}, []string{n},
			og.AttrInt("activation", act), og.AttrFloat("epsilon", eps), og.AttrInt("groups", groups), og.AttrInt("channels_last", 1))
		return b.op("Transpose", []string{n}, og.AttrInts("perm", 0, 3, 1, 2))
	}
	shape := b.op("Shape", []string{x})
	r := b.op("Reshape", []string{x, b.ints(0, groups, -1)})
	ones := make([]float32, groups)
	zeros := make([]float32, groups)
	for i := range ones {
		ones[i] = 1
	}
	n := b.op("InstanceNormalization", []string{r, b.floats([]int64{groups}, ones), b.floats([]int64{groups}, zeros)}, og.AttrFloat("epsilon", eps))
	n = b.op("Reshape", []string{n, shape})
	n = b.op("Mul", []string{n, b.weightAs(prefix+".weight", []int64{channels}, channels, 1, 1)})
	n = b.op("Add", []string{n, b.weightAs(prefix+".bias", []int64{channels}, channels, 1, 1)})
	if silu {
		n = b.silu(n)
	}
	return n
}

// groupNormWidths are the channel counts the CUDA provider's GroupNorm kernel
// has taken since it was added: SD 1.5's and SDXL's UNet and VAE widths.
var groupNormWidths = []int64{128, 256, 320, 512, 640, 960, 1280, 1920, 2560}

// layerNorm is torch.nn.LayerNorm over the last dim.
func (b *builder) layerNorm(x, prefix string, dim int64, eps float32) string {
	return b.op("LayerNormalization", []string{x, b.weight(prefix+".weight", dim), b.weight(prefix+".bias", dim)},
		og.AttrInt("axis", -1), og.AttrFloat("epsilon", eps))
}

// causalMask is the additive [T, T] mask of CLIP's 77 tokens: -max above the
// diagonal.
func (b *builder) causalMask() string {
	if name, ok := b.consts["causal"]; ok {
		return name
	}
	mask := make([]float32, TokenLength*TokenLength)
	for i := range TokenLength {
		for j := i + 1; j < TokenLength; j++ {
			mask[i*TokenLength+j] = -math.MaxFloat32
		}
	}
	name := b.floats([]int64{TokenLength, TokenLength}, mask)
	b.consts["causal"] = name
	return name
}

func (b *builder) silu(x string) string {
	return b.op("Mul", []string{x, b.op("Sigmoid", []string{x})})
}

// gelu is the exact (erf) GELU.
func (b *builder) gelu(x string) string {
	e := b.op("Erf", []string{b.op("Mul", []string{x, b.scalar(float32(1 / math.Sqrt2))})})
	e = b.op("Add", []string{e, b.scalar(1)})
	return b.op("Mul", []string{b.op("Mul", []string{x, e}), b.scalar(0.5)})
}

// quickGELU is CLIP's x·sigmoid(1.702x).
func (b *builder) quickGELU(x string) string {
	return b.op("Mul", []string{x, b.op("Sigmoid", []string{b.op("Mul", []string{x, b.scalar(1.702)})})})
}

func (b *builder) act(name, x string) (string, error) {
	switch name {
	case "silu", "swish":
		return b.silu(x), nil
	case "gelu":
		return b.gelu(x), nil
	case "quick_gelu":
		return b.quickGELU(x), nil
	}
	return "", fmt.Errorf("activation %q is not supported (want silu, gelu or quick_gelu)", name)
}

// attention is scaled dot-product attention of q [B, T, heads·d] over k, v
// [B, S, heads·d], causal (T = S) or not; it returns [B, T, heads·d]. prescaled
// says q already carries 1/√d (CLIP).
func (b *builder) attention(q, k, v string, heads, headDim int64, causal, prescaled bool) string {
	if b.opts.FusedAttention {
		scale := float32(1 / math.Sqrt(float64(headDim)))
		if prescaled {
			scale = 1
		}
		attrs := []og.Attr{og.AttrInt("num_heads", heads), og.AttrFloat("scale", scale)}
		if causal {
			attrs = append(attrs, og.AttrInt("unidirectional", 1))
		}
		out := b.tmp()
		b.g.NodeIn(og.ContribDomain, "MultiHeadAttention", []string{q, k, v}, []string{out}, attrs...)
		return out
	}
	split := func(x string) string {
		r := b.op("Reshape", []string{x, b.ints(0, 0, heads, headDim)})
		return b.op("Transpose", []string{r}, og.AttrInts("perm", 0, 2, 1, 3))
	}
	qh, vh := split(q), split(v)
	kr := b.op("Reshape", []string{k, b.ints(0, 0, heads, headDim)})
	kh := b.op("Transpose", []string{kr}, og.AttrInts("perm", 0, 2, 3, 1))
	scores := b.dtype
	if b.upcast {
		scores = og.Float
		qh, kh = b.toFloat(qh), b.toFloat(kh)
	}
	if !prescaled {
		qh = b.op("Mul", []string{qh, b.scalarOf(scores, float32(1/math.Sqrt(float64(headDim))))})
	}
	s := b.op("MatMul", []string{qh, kh})
	if causal {
		s = b.op("Add", []string{s, b.causalMask()})
	}
	p := b.op("Softmax", []string{s}, og.AttrInt("axis", -1))
	if b.upcast {
		p = b.compute(p)
	}
	o := b.op("MatMul", []string{p, vh})
	o = b.op("Transpose", []string{o}, og.AttrInts("perm", 0, 2, 1, 3))
	return b.op("Reshape", []string{o, b.ints(0, 0, heads*headDim)})
}
