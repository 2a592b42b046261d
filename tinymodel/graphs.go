package tinymodel

import (
	"hash/fnv"
	"math"
	"strconv"

	og "github.com/diffute/diffute/onnxgraph"
)

// Shapes shared by every tiny model.
const (
	maxLength      = 77 // CLIP's context length, fixed in the text encoders' inputs
	latentChannels = 4
	vaeScale       = 8 // pixels per latent along each axis
	timeFreqs      = 8 // sinusoidal timestep features (sin and cos of each)
	mixedWeights   = 4 // distinct layer weights per text encoder, cycled over its layers
)

// Symbolic dims, named as Optimum names them.
var (
	batchDim     = og.Sym("batch_size")
	seqDim       = og.Fixed(maxLength)
	heightDim    = og.Sym("height")
	widthDim     = og.Sym("width")
	latentHeight = og.Sym("latent_height")
	latentWidth  = og.Sym("latent_width")
)

// weights draws seeded pseudo-random weights with splitmix64, which is defined
// here rather than borrowed from math/rand so that the bytes of a model can never
// change with the Go version.
type weights struct{ state uint64 }

func newWeights(model, component string) *weights {
	h := fnv.New64a()
	h.Write([]byte(model + "/" + component))
	return &weights{state: h.Sum64()}
}

func (w *weights) next() uint64 {
	w.state += 0x9e3779b97f4a7c15
	z := w.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// uniform returns n values uniform in [-scale, scale).
func (w *weights) uniform(n int, scale float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		u := float64(w.next()>>11) / (1 << 53) // [0, 1)
		out[i] = float32((2*u - 1) * scale)
	}
	return out
}

// builder writes one component graph: it names intermediate values, adds
// seeded weights, and converts float inputs and outputs to float16 at the graph's
// edge when the model is an fp16 variant, so everything inside stays float32.
type builder struct {
	g    *og.Graph
	w    *weights
	fp16 bool
	n    int
}

func newBuilder(model, component string, fp16 bool) *builder {
	return &builder{g: og.NewGraph(component), w: newWeights(model, component), fp16: fp16}
}

func (b *builder) floatType() og.DType {
	if b.fp16 {
		return og.Float16
	}
	return og.Float
}

// tmp returns a fresh name for an intermediate value.
func (b *builder) tmp(hint string) string {
	b.n++
	return hint + "_" + strconv.Itoa(b.n)
}

// op adds a node with one output and returns the output's name.
func (b *builder) op(op string, inputs []string, attrs ...og.Attr) string {
	out := b.tmp(op)
	b.g.Node(op, inputs, []string{out}, attrs...)
	return out
}

// floatInput declares a float input (float16 in fp16 models) and returns the
// name of its float32 value.
func (b *builder) floatInput(name string, dims ...og.Dim) string {
	b.g.Input(name, b.floatType(), dims...)
	if !b.fp16 {
		return name
	}
	return b.op("Cast", []string{name}, og.AttrInt("to", int64(og.Float)))
}

// output publishes the float32 value v as the graph output name (float16 in
// fp16 models).
func (b *builder) output(v, name string, dims ...og.Dim) {
	b.g.Output(name, b.floatType(), dims...)
	if b.fp16 {
		b.g.Node("Cast", []string{v}, []string{name}, og.AttrInt("to", int64(og.Float16)))
		return
	}
	b.g.Node("Identity", []string{v}, []string{name})
}

// param adds a float32 weight of the given shape, uniform with the given
// standard deviation, and returns its name.
func (b *builder) param(name string, std float64, dims ...int64) string {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	b.g.Initializer(name, og.Float, dims, b.w.uniform(int(n), std*math.Sqrt(3)))
	return name
}

// constF adds a float32 constant.
func (b *builder) constF(name string, dims []int64, v []float32) string {
	b.g.Initializer(name, og.Float, dims, v)
	return name
}

// constI adds an int64 constant (axes, positions).
func (b *builder) constI(name string, dims []int64, v []int64) string {
	b.g.Initializer(name, og.Int64, dims, v)
	return name
}

// textEncoder describes one CLIP text encoder export.
type textEncoder struct {
	ids        og.DType // int32 for SD/SDXL's first encoder, int64 for SDXL's second
	vocab      int
	hidden     int
	layers     int
	projection int  // text_embeds width; 0 for a CLIPTextModel (pooler_output instead)
	allHidden  bool // publish hidden_states.0 .. hidden_states.<layers>
}

// buildTextEncoder writes a CLIP-shaped text encoder. Token and position
// embeddings are summed, then each layer adds a small residual of
// tanh((h + mean over tokens of h) W + b), so every position depends on every
// token; last_hidden_state is the final layer normalised, and the pooled output
// is last_hidden_state at the first position of the largest id (CLIP's
// end-of-text), as CLIP pools.
func buildTextEncoder(b *builder, te textEncoder) *og.Model {
	D := int64(te.hidden)
	b.g.Input("input_ids", te.ids, batchDim, seqDim)
	emb := b.op("Gather", []string{b.param("token_embedding", 1, int64(te.vocab), D), "input_ids"}, og.AttrInt("axis", 0))
	h := b.op("Add", []string{emb, b.param("position_embedding", 0.5, maxLength, D)})
	hidden := []string{h}
	step := b.constF("residual_scale", nil, []float32{0.1})
	for i := 0; i < te.layers; i++ {
		k := strconv.Itoa(i % mixedWeights)
		if i < mixedWeights {
			b.param("layer_weight_"+k, 1/math.Sqrt(float64(D)), D, D)
			b.param("layer_bias_"+k, 0.1, D)
		}
		mean := b.op("ReduceMean", []string{h}, og.AttrInts("axes", 1), og.AttrInt("keepdims", 1))
		mixed := b.op("Add", []string{h, mean})
		z := b.op("Add", []string{b.op("MatMul", []string{mixed, "layer_weight_" + k}), "layer_bias_" + k})
		h = b.op("Add", []string{h, b.op("Mul", []string{b.op("Tanh", []string{z}), step})})
		hidden = append(hidden, h)
	}
	last := b.op("LayerNormalization", []string{h, b.constF("final_norm_weight", []int64{D}, ones(te.hidden)), b.constF("final_norm_bias", []int64{D}, make([]float32, te.hidden))},
		og.AttrInt("axis", -1), og.AttrFloat("epsilon", 1e-5))

	// Pool at the first occurrence of the largest id: ArgMax on the ids as float
	// (exact below 2^24), then a one-hot mask over positions.
	idsF := b.op("Cast", []string{"input_ids"}, og.AttrInt("to", int64(og.Float)))
	eos := b.op("ArgMax", []string{idsF}, og.AttrInt("axis", 1), og.AttrInt("keepdims", 1))
	positions := make([]int64, maxLength)
	for i := range positions {
		positions[i] = int64(i)
	}
	mask := b.op("Equal", []string{b.constI("positions", []int64{1, maxLength}, positions), eos})
	maskF := b.op("Cast", []string{mask}, og.AttrInt("to", int64(og.Float)))
	mask3 := b.op("Unsqueeze", []string{maskF, b.constI("axis_2", []int64{1}, []int64{2})})
	pooled := b.op("ReduceSum", []string{b.op("Mul", []string{last, mask3}), b.constI("axis_1", []int64{1}, []int64{1})}, og.AttrInt("keepdims", 0))

	if te.projection > 0 {
		proj := b.op("MatMul", []string{pooled, b.param("text_projection", 1/math.Sqrt(float64(D)), D, int64(te.projection))})
		b.output(proj, "text_embeds", batchDim, og.Fixed(int64(te.projection)))
		b.output(last, "last_hidden_state", batchDim, seqDim, og.Fixed(D))
	} else {
		b.output(last, "last_hidden_state", batchDim, seqDim, og.Fixed(D))
		b.output(pooled, "pooler_output", batchDim, og.Fixed(D))
	}
	if te.allHidden {
		for i, v := range hidden {
			b.output(v, "hidden_states."+strconv.Itoa(i), batchDim, seqDim, og.Fixed(D))
		}
	}
	return og.NewModel(b.g)
}

// timestepKind is the layout of the UNet's timestep input.
type timestepKind int

const (
	timestepInt64    timestepKind = iota // int64 [1], SD 1.x exports
	timestepScalar                       // float rank 0, SDXL exports
	timestepFloatOne                     // float [1]; fp16 models, since Go cannot make a float16 scalar
)

// unet describes one UNet export.
type unet struct {
	timestep timestepKind
	text     int // encoder_hidden_states width
	pooled   int // text_embeds width; 0 for SD 1.x (no text_embeds or time_ids)
}

// buildUNet writes a UNet with the real inputs and output whose prediction is
// tanh(conv1x1(sample) + c), where c is a per-channel bias summing projections of sinusoidal timestep features, the token-mean of
// encoder_hidden_states and, for SDXL, text_embeds and time_ids: every input moves
// the output, and a 64x64 call stays cheap.
func buildUNet(b *builder, u unet) *og.Model {
	C := int64(latentChannels)
	sample := b.floatInput("sample", batchDim, og.Fixed(latentChannels), heightDim, widthDim)

	var t string
	switch u.timestep {
	case timestepInt64:
		b.g.Input("timestep", og.Int64, og.Fixed(1))
		t = b.op("Cast", []string{"timestep"}, og.AttrInt("to", int64(og.Float)))
	case timestepScalar:
		t = b.floatInput("timestep")
	case timestepFloatOne:
		t = b.floatInput("timestep", og.Fixed(1))
	}
	freqs := make([]float32, timeFreqs)
	for i := range freqs {
		freqs[i] = float32(math.Exp(-math.Log(10000) * float64(i) / timeFreqs))
	}
	// A rank-0 or [1] timestep times [8] frequencies broadcasts to [8] either way.
	arg := b.op("Mul", []string{t, b.constF("time_frequencies", []int64{timeFreqs}, freqs)})
	feat := b.op("Concat", []string{b.op("Sin", []string{arg}), b.op("Cos", []string{arg})}, og.AttrInt("axis", -1))
	cond := b.op("MatMul", []string{feat, b.param("time_embedding", 1/math.Sqrt(2*timeFreqs), 2*timeFreqs, C)})

	ehs := b.floatInput("encoder_hidden_states", batchDim, seqDim, og.Fixed(int64(u.text)))
	ctx := b.op("ReduceMean", []string{ehs}, og.AttrInts("axes", 1), og.AttrInt("keepdims", 0))
	cond = b.op("Add", []string{cond, b.op("MatMul", []string{ctx, b.param("text_projection", 1/math.Sqrt(float64(u.text)), int64(u.text), C)})})

	if u.pooled > 0 {
		pooled := b.floatInput("text_embeds", batchDim, og.Fixed(int64(u.pooled)))
		cond = b.op("Add", []string{cond, b.op("MatMul", []string{pooled, b.param("pooled_projection", 1/math.Sqrt(float64(u.pooled)), int64(u.pooled), C)})})
		ids := b.floatInput("time_ids", batchDim, og.Fixed(6))
		// time_ids hold pixel sizes and offsets (1024, 0, ...): scale to ~1.
		ids = b.op("Mul", []string{ids, b.constF("time_ids_scale", nil, []float32{1.0 / 1024})})
		cond = b.op("Add", []string{cond, b.op("MatMul", []string{ids, b.param("time_ids_projection", 0.5, 6, C)})})
	}
	cond = b.op("Unsqueeze", []string{cond, b.constI("axes_hw", []int64{2}, []int64{2, 3})})

	conv := func(in, name string, cin, cout int64, std float64) string {
		return b.op("Conv", []string{in, b.param(name+"_weight", std, cout, cin, 1, 1), b.param(name+"_bias", 0.05, cout)},
			og.AttrInts("kernel_shape", 1, 1))
	}
	// One pass over the latents: a wider hidden layer cost ~100 µs per 64x64
	// call for each 4 channels, and the pipeline only needs a bounded prediction.
	h := conv(sample, "conv", latentChannels, latentChannels, 1/math.Sqrt(latentChannels))
	out := b.op("Tanh", []string{b.op("Add", []string{h, cond})})
	b.output(out, "out_sample", batchDim, og.Fixed(latentChannels), heightDim, widthDim)
	return og.NewModel(b.g)
}

// buildVAEDecoder writes a decoder from latents to pixels in (-1, 1): a 1x1
// convolution to 3*8*8 channels, DepthToSpace by 8, tanh.
func buildVAEDecoder(b *builder) *og.Model {
	latent := b.floatInput("latent_sample", batchDim, og.Fixed(latentChannels), latentHeight, latentWidth)
	const out = 3 * vaeScale * vaeScale
	// Latents reach the decoder divided by the scaling factor (std ~5): keep the
	// convolution's output near unit scale so tanh does not saturate.
	h := b.op("Conv", []string{latent, b.param("conv_weight", 0.1, out, latentChannels, 1, 1), b.param("conv_bias", 0.2, out)},
		og.AttrInts("kernel_shape", 1, 1))
	h = b.op("DepthToSpace", []string{h}, og.AttrInt("blocksize", vaeScale), og.AttrString("mode", "CRD"))
	b.output(b.op("Tanh", []string{h}), "sample", batchDim, og.Fixed(3), heightDim, widthDim)
	return og.NewModel(b.g)
}

// buildVAEEncoder writes the encoder img2img pipelines use: SpaceToDepth by 8,
// then a 1x1 convolution to the 4 latent channels.
func buildVAEEncoder(b *builder) *og.Model {
	img := b.floatInput("sample", batchDim, og.Fixed(3), heightDim, widthDim)
	const in = 3 * vaeScale * vaeScale
	h := b.op("SpaceToDepth", []string{img}, og.AttrInt("blocksize", vaeScale))
	h = b.op("Conv", []string{h, b.param("conv_weight", 1/math.Sqrt(in), latentChannels, in, 1, 1), b.param("conv_bias", 0.05, latentChannels)},
		og.AttrInts("kernel_shape", 1, 1))
	b.output(h, "latent_sample", batchDim, og.Fixed(latentChannels), latentHeight, latentWidth)
	return og.NewModel(b.g)
}

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}
