package onnx

import (
	"fmt"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// floatTensor is a float tensor the pipeline fills or reads as float32, whatever the
// model's element type: fp32 tensors are used in place, fp16 ones are backed by a
// byte buffer (onnxruntime_go has no float16 Go type, and ORT cannot allocate fp16
// outputs for it, so they are always preallocated) and converted on the way.
type floatTensor struct {
	value ort.Value
	shape ort.Shape
	f32   []float32 // fp32 backing, nil for fp16
	f16   []uint16  // fp16 backing (a view of the custom tensor's bytes), nil for fp32
}

func isFloatType(t ort.TensorElementDataType) bool {
	return t == ort.TensorElementDataTypeFloat || t == ort.TensorElementDataTypeFloat16
}

func newFloatTensor(dtype ort.TensorElementDataType, shape ort.Shape) (*floatTensor, error) {
	n := shape.FlattenedSize()
	switch dtype {
	case ort.TensorElementDataTypeFloat:
		t, err := ort.NewEmptyTensor[float32](shape)
		if err != nil {
			return nil, fmt.Errorf("onnx: allocate %v float32 tensor: %w", shape, err)
		}
		return &floatTensor{value: t, shape: shape.Clone(), f32: t.GetData()}, nil
	case ort.TensorElementDataTypeFloat16:
		// Allocating as []uint16 keeps the buffer 2-byte aligned for the view below.
		backing := make([]uint16, n)
		bytes := unsafe.Slice((*byte)(unsafe.Pointer(&backing[0])), 2*n)
		t, err := ort.NewCustomDataTensor(shape, bytes, ort.TensorElementDataTypeFloat16)
		if err != nil {
			return nil, fmt.Errorf("onnx: allocate %v float16 tensor: %w", shape, err)
		}
		return &floatTensor{value: t, shape: shape.Clone(), f16: backing}, nil
	default:
		return nil, fmt.Errorf("onnx: unsupported element type %v (want float or float16)", dtype)
	}
}

func (t *floatTensor) len() int {
	if t.f32 != nil {
		return len(t.f32)
	}
	return len(t.f16)
}

// store copies src into the tensor at element offset off.
func (t *floatTensor) store(off int, src []float32) {
	if t.f32 != nil {
		copy(t.f32[off:], src)
		return
	}
	dst := t.f16[off : off+len(src)]
	for i, v := range src {
		dst[i] = float32ToHalf(v)
	}
}

// storeScaled stores src×scale at element offset off.
func (t *floatTensor) storeScaled(off int, src []float32, scale float32) {
	if t.f32 != nil {
		dst := t.f32[off : off+len(src)]
		for i, v := range src {
			dst[i] = v * scale
		}
		return
	}
	dst := t.f16[off : off+len(src)]
	for i, v := range src {
		dst[i] = float32ToHalf(v * scale)
	}
}

// storeScaledTwice stores src×scale at element offsets off0 and off1 in one pass
// (the two halves of a guided batch), reading src once.
func (t *floatTensor) storeScaledTwice(off0, off1 int, src []float32, scale float32) {
	if t.f32 != nil {
		d0 := t.f32[off0 : off0+len(src)]
		d1 := t.f32[off1 : off1+len(src)]
		for i, v := range src {
			v *= scale
			d0[i] = v
			d1[i] = v
		}
		return
	}
	d0 := t.f16[off0 : off0+len(src)]
	d1 := t.f16[off1 : off1+len(src)]
	for i, v := range src {
		h := float32ToHalf(v * scale)
		d0[i] = h
		d1[i] = h
	}
}

// load copies the tensor's elements from offset off into dst.
func (t *floatTensor) load(off int, dst []float32) {
	if t.f32 != nil {
		copy(dst, t.f32[off:])
		return
	}
	src := t.f16[off : off+len(dst)]
	for i, h := range src {
		dst[i] = halfToFloat32(h)
	}
}

func (t *floatTensor) destroy() {
	if t != nil && t.value != nil {
		_ = t.value.Destroy()
		t.value = nil
	}
}

// newIDsTensor returns an input_ids tensor of the model's integer type holding ids
// ([rows, len(ids)/rows]).
func newIDsTensor(dtype ort.TensorElementDataType, rows int, ids []int64) (ort.Value, error) {
	shape := ort.NewShape(int64(rows), int64(len(ids)/rows))
	switch dtype {
	case ort.TensorElementDataTypeInt64:
		return ort.NewTensor(shape, append([]int64(nil), ids...))
	case ort.TensorElementDataTypeInt32:
		d := make([]int32, len(ids))
		for i, v := range ids {
			d[i] = int32(v)
		}
		return ort.NewTensor(shape, d)
	default:
		return nil, fmt.Errorf("unsupported input_ids element type %v (want int32 or int64)", dtype)
	}
}

// resolveShape fills the symbolic (negative) dimensions of a model's declared shape
// from want, and checks that the fixed ones agree. want's -1 entries mean "take the
// model's"; a dimension that neither side fixes is an error.
func resolveShape(declared ort.Shape, want ort.Shape) (ort.Shape, error) {
	if len(declared) != len(want) {
		return nil, fmt.Errorf("rank %d, want %d", len(declared), len(want))
	}
	out := make(ort.Shape, len(want))
	for i := range want {
		d, w := declared[i], want[i]
		switch {
		case d > 0 && w > 0 && d != w:
			return nil, fmt.Errorf("dimension %d is %d, want %d", i, d, w)
		case w > 0:
			out[i] = w
		case d > 0:
			out[i] = d
		default:
			return nil, fmt.Errorf("dimension %d is symbolic and cannot be inferred", i)
		}
	}
	return out, nil
}
