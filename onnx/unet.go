package onnx

import (
	"fmt"
	"math"

	"github.com/diffute/diffute/clip"
	ort "github.com/yalue/onnxruntime_go"
)

// Indexes of the UNet inputs in the order its session is run with.
const (
	inSample = iota
	inTimestep
	inHidden
	inTextEmbeds // SDXL
	inTimeIDs    // SDXL
)

// unetModel is the denoising UNet session and the layout it was exported with.
type unetModel struct {
	rel        string
	sess       *ort.DynamicAdvancedSession
	sample     ort.InputOutputInfo
	timestep   ort.InputOutputInfo
	hidden     ort.InputOutputInfo
	textEmbeds *ort.InputOutputInfo // SDXL
	timeIDs    *ort.InputOutputInfo // SDXL
	out        ort.InputOutputInfo
	channels   int // latent channels
	hiddenDim  int // 0 when symbolic
	pooledDim  int // SDXL; 0 when symbolic
	// bindOnce: the session runs on the CPU, where ORT reads bound inputs in place
	// at each Run, so a generation binds its tensors once. On a GPU IoBinding
	// copies an input to the device when it is bound: the conditioning (the text
	// states, SDXL's pooled embeddings and time ids, constant over a
	// generation) is bound once after it is written, so it is copied once and
	// not at every step; the sample is bound again at each step.
	bindOnce bool
}

func (u *unetModel) session() *ort.DynamicAdvancedSession {
	if u == nil {
		return nil
	}
	return u.sess
}

func openUNet(src componentSource, sc sessionConfig, family Family) (*unetModel, error) {
	m, err := src.info("unet")
	if err != nil {
		return nil, err
	}
	_, hasEmbeds := m.input("text_embeds")
	_, hasTimeIDs := m.input("time_ids")
	if family == SD && (hasEmbeds || hasTimeIDs) {
		return nil, fmt.Errorf("onnx: %s takes text_embeds/time_ids (an SDXL UNet) but the folder has no text_encoder_2", m.rel)
	}
	names := unetInputNames[:inTextEmbeds]
	if family == SDXL {
		names = unetInputNames
	}
	if err := m.checkOnlyInputs(names...); err != nil {
		return nil, err
	}
	dev, err := parseDevice(sc.device)
	if err != nil {
		return nil, err
	}
	u := &unetModel{rel: m.rel, bindOnce: dev < 0}
	if u.sample, err = requireFloatInput(m, "sample", 4); err != nil {
		return nil, err
	}
	u.channels = dim(u.sample.Dimensions, 1)
	if u.channels == 0 {
		u.channels = 4
	}
	if u.hidden, err = requireFloatInput(m, "encoder_hidden_states", 3); err != nil {
		return nil, err
	}
	if n := dim(u.hidden.Dimensions, 1); n != 0 && n != clip.MaxLength {
		return nil, fmt.Errorf("onnx: %s encoder_hidden_states takes %d tokens, want %d", m.rel, n, clip.MaxLength)
	}
	u.hiddenDim = dim(u.hidden.Dimensions, 2)
	if u.timestep, err = m.requireInput("timestep"); err != nil {
		return nil, err
	}
	if err := checkTimestep(m.rel, u.timestep); err != nil {
		return nil, err
	}
	if family == SDXL {
		te, err := requireFloatInput(m, "text_embeds", 2)
		if err != nil {
			return nil, err
		}
		ti, err := requireFloatInput(m, "time_ids", 2)
		if err != nil {
			return nil, err
		}
		if n := dim(ti.Dimensions, 1); n != 0 && n != 6 {
			return nil, fmt.Errorf("onnx: %s time_ids has %d values per row, want 6", m.rel, n)
		}
		u.textEmbeds, u.timeIDs = &te, &ti
		u.pooledDim = dim(te.Dimensions, 1)
	}
	if u.out, err = m.requireOutput("out_sample"); err != nil {
		return nil, err
	}
	if len(u.out.Dimensions) != 4 {
		return nil, fmt.Errorf("onnx: %s output out_sample has rank %d, want 4", m.rel, len(u.out.Dimensions))
	}
	if u.sess, err = m.newSession(names, []string{"out_sample"}, sc); err != nil {
		return nil, err
	}
	return u, nil
}

// checkTimestep accepts the timestep layouts of real exports: int64 [1] (2023),
// a float scalar (rank 0, newer exports) or float [1].
func checkTimestep(rel string, ts ort.InputOutputInfo) error {
	if r := len(ts.Dimensions); r > 1 || (r == 1 && ts.Dimensions[0] > 1) {
		return fmt.Errorf("onnx: %s timestep has shape %v, want a scalar or [1]", rel, ts.Dimensions)
	}
	switch ts.DataType {
	case ort.TensorElementDataTypeInt64, ort.TensorElementDataTypeInt32, ort.TensorElementDataTypeFloat:
		return nil
	case ort.TensorElementDataTypeFloat16:
		if len(ts.Dimensions) == 0 {
			// onnxruntime_go can only build rank-0 values of Go types, and Go has no float16.
			return fmt.Errorf("onnx: %s timestep is a float16 scalar, which is not supported (want int64, float, or float16 [1])", rel)
		}
		return nil
	}
	return fmt.Errorf("onnx: %s timestep has element type %v, want int64, int32, float or float16", rel, ts.DataType)
}

// newTimestep builds the timestep value for t in the model's type and rank. Integer
// timesteps are truncated, as diffusers' ONNX pipeline does (np.array(t, int64)).
func newTimestep(info ort.InputOutputInfo, t float64) (ort.Value, error) {
	scalar := len(info.Dimensions) == 0
	one := ort.NewShape(1)
	switch info.DataType {
	case ort.TensorElementDataTypeInt64:
		if scalar {
			return ort.NewScalar(int64(t))
		}
		return ort.NewTensor(one, []int64{int64(t)})
	case ort.TensorElementDataTypeInt32:
		if scalar {
			return ort.NewScalar(int32(t))
		}
		return ort.NewTensor(one, []int32{int32(t)})
	case ort.TensorElementDataTypeFloat:
		if scalar {
			return ort.NewScalar(float32(t))
		}
		return ort.NewTensor(one, []float32{float32(t)})
	case ort.TensorElementDataTypeFloat16:
		ft, err := newFloatTensor(info.DataType, one)
		if err != nil {
			return nil, err
		}
		ft.store(0, []float32{float32(t)})
		return ft.value, nil
	}
	return nil, fmt.Errorf("unsupported timestep type %v", info.DataType)
}

// unetCall holds every tensor of one generation's UNet calls, allocated once and
// reused at each step: the sample is rewritten in place, the timestep of each step
// is prebuilt (onnxruntime_go's Scalar.Set does not update the value ORT reads, so
// rank-0 timesteps cannot be rewritten), and the output is preallocated. The
// tensors are bound to an IoBinding: on the CPU once, so a step allocates nothing
// in Go but the rebinding of its timestep (onnxruntime_go's BindInput: 8 bytes);
// on a GPU see unetModel.bindOnce.
type unetCall struct {
	binding   *ort.IoBinding // nil: plain Run
	u         *unetModel
	rows      int // batch rows: images × (2 with guidance)
	sample    *floatTensor
	out       *floatTensor
	hidden    *floatTensor
	embeds    *floatTensor // SDXL
	timeIDs   *floatTensor // SDXL
	timesteps []ort.Value
	inputs    []ort.Value
	// rebindSample: the binding copies what it binds (a GPU), so the sample,
	// rewritten at every step, is bound again before each run.
	rebindSample bool
}

// newCall prepares the tensors for rows batch rows of lh×lw latents and the given
// timesteps.
func (u *unetModel) newCall(rows, lh, lw int, timesteps []float64, hiddenDim, pooledDim int) (c *unetCall, err error) {
	c = &unetCall{u: u, rows: rows}
	defer func() {
		if err != nil {
			c.destroy()
			c = nil
		}
	}()
	latent := ort.NewShape(int64(rows), int64(u.channels), int64(lh), int64(lw))
	shape, err := resolveShape(u.sample.Dimensions, latent)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s sample for %d×%d latents: %w", u.rel, lh, lw, err)
	}
	if c.sample, err = newFloatTensor(u.sample.DataType, shape); err != nil {
		return nil, err
	}
	if shape, err = resolveShape(u.out.Dimensions, latent); err != nil {
		return nil, fmt.Errorf("onnx: %s out_sample for %d×%d latents: %w", u.rel, lh, lw, err)
	}
	if c.out, err = newFloatTensor(u.out.DataType, shape); err != nil {
		return nil, err
	}
	if shape, err = resolveShape(u.hidden.Dimensions, ort.NewShape(int64(rows), clip.MaxLength, int64(hiddenDim))); err != nil {
		return nil, fmt.Errorf("onnx: %s encoder_hidden_states: %w", u.rel, err)
	}
	if c.hidden, err = newFloatTensor(u.hidden.DataType, shape); err != nil {
		return nil, err
	}
	c.inputs = []ort.Value{c.sample.value, nil, c.hidden.value}
	if u.textEmbeds != nil {
		if shape, err = resolveShape(u.textEmbeds.Dimensions, ort.NewShape(int64(rows), int64(pooledDim))); err != nil {
			return nil, fmt.Errorf("onnx: %s text_embeds: %w", u.rel, err)
		}
		if c.embeds, err = newFloatTensor(u.textEmbeds.DataType, shape); err != nil {
			return nil, err
		}
		if shape, err = resolveShape(u.timeIDs.Dimensions, ort.NewShape(int64(rows), 6)); err != nil {
			return nil, fmt.Errorf("onnx: %s time_ids: %w", u.rel, err)
		}
		if c.timeIDs, err = newFloatTensor(u.timeIDs.DataType, shape); err != nil {
			return nil, err
		}
		c.inputs = append(c.inputs, c.embeds.value, c.timeIDs.value)
	}
	if u.bindOnce {
		if err := c.bind(); err != nil {
			return nil, err
		}
	}
	c.timesteps = make([]ort.Value, len(timesteps))
	for i, t := range timesteps {
		if math.IsNaN(t) {
			return nil, fmt.Errorf("onnx: scheduler timestep %d is NaN", i)
		}
		if c.timesteps[i], err = newTimestep(u.timestep, t); err != nil {
			return nil, fmt.Errorf("onnx: %s timestep: %w", u.rel, err)
		}
	}
	return c, nil
}

// unetInputNames are the session's input names, in inSample… order.
var unetInputNames = []string{"sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"}

// conditioned is called once the conditioning is written: on a GPU it binds
// the conditioning (copied to the device now, once) and the output.
func (c *unetCall) conditioned() error {
	if c.binding != nil {
		return nil // the CPU: bound in place at newCall
	}
	if err := c.bind(); err != nil {
		return err
	}
	c.rebindSample = true
	return nil
}

// bind binds every input but the timestep, and the output.
func (c *unetCall) bind() error {
	b, err := c.u.sess.CreateIoBinding()
	if err != nil {
		return fmt.Errorf("onnx: %s: create IO binding: %w", c.u.rel, err)
	}
	c.binding = b
	for i, v := range c.inputs {
		if i == inTimestep {
			continue
		}
		if err := b.BindInput(unetInputNames[i], v); err != nil {
			return fmt.Errorf("onnx: %s: bind %s: %w", c.u.rel, unetInputNames[i], err)
		}
	}
	if err := b.BindOutput("out_sample", c.out.value); err != nil {
		return fmt.Errorf("onnx: %s: bind out_sample: %w", c.u.rel, err)
	}
	return nil
}

// run calls the UNet for denoising step i (after conditioned).
func (c *unetCall) run(i int) error {
	var err error
	if c.rebindSample {
		err = c.binding.BindInput("sample", c.sample.value)
	}
	if err == nil {
		err = c.binding.BindInput("timestep", c.timesteps[i])
	}
	if err == nil {
		err = c.u.sess.RunWithBinding(c.binding)
	}
	if err != nil {
		return fmt.Errorf("onnx: run %s: %w", c.u.rel, err)
	}
	return nil
}

func (c *unetCall) destroy() {
	if c.binding != nil {
		_ = c.binding.Destroy()
	}
	for _, t := range []*floatTensor{c.sample, c.out, c.hidden, c.embeds, c.timeIDs} {
		t.destroy()
	}
	for _, v := range c.timesteps {
		if v != nil {
			_ = v.Destroy()
		}
	}
}
