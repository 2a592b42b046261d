package tinymodel_test

import (
	"encoding/binary"
	"github.com/diffute/diffute/internal/ortest"
	"math"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/diffute/diffute/onnxgraph"
)

// requireORT initialises ONNX Runtime once for the package (package ortest).
func requireORT(tb testing.TB) {
	tb.Helper()
	ortest.Require(tb)
}

// feed is one input of a graph: its shape (nil for rank 0) and values
// (converted to the input's element type).
type feed struct {
	name  string
	shape []int64
	data  []float64
}

func (f feed) with(i int, v float64) feed {
	f.data = append([]float64(nil), f.data...)
	f.data[i] = v
	return f
}

// component is a loaded graph that can be run on feeds.
type component struct {
	path     string
	sess     *ort.DynamicAdvancedSession
	ins      []ort.InputOutputInfo
	outs     []ort.InputOutputInfo
	outShape map[string][]int64
}

func loadComponent(tb testing.TB, path string, outShape map[string][]int64) *component {
	tb.Helper()
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	var inNames, outNames []string
	for _, i := range ins {
		inNames = append(inNames, i.Name)
	}
	for _, o := range outs {
		outNames = append(outNames, o.Name)
	}
	sess, err := ort.NewDynamicAdvancedSession(path, inNames, outNames, nil)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	tb.Cleanup(func() { sess.Destroy() })
	return &component{path: path, sess: sess, ins: ins, outs: outs, outShape: outShape}
}

func newValue(tb testing.TB, dtype ort.TensorElementDataType, shape []int64, data []float64) ort.Value {
	tb.Helper()
	var v ort.Value
	var err error
	s := ort.NewShape(shape...)
	switch dtype {
	case ort.TensorElementDataTypeFloat:
		f := make([]float32, len(data))
		for i, x := range data {
			f[i] = float32(x)
		}
		if shape == nil {
			v, err = ort.NewScalar(f[0])
		} else {
			v, err = ort.NewTensor(s, f)
		}
	case ort.TensorElementDataTypeFloat16:
		raw := make([]byte, 2*len(data))
		for i, x := range data {
			binary.LittleEndian.PutUint16(raw[2*i:], onnxgraph.Float16Bits(float32(x)))
		}
		v, err = ort.NewCustomDataTensor(s, raw, dtype)
	case ort.TensorElementDataTypeInt32:
		d := make([]int32, len(data))
		for i, x := range data {
			d[i] = int32(x)
		}
		v, err = ort.NewTensor(s, d)
	case ort.TensorElementDataTypeInt64:
		d := make([]int64, len(data))
		for i, x := range data {
			d[i] = int64(x)
		}
		if shape == nil {
			v, err = ort.NewScalar(d[0])
		} else {
			v, err = ort.NewTensor(s, d)
		}
	default:
		tb.Fatalf("no test value for element type %v", dtype)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// run runs the component once and returns every output as float32, checking
// that each is finite.
func (c *component) run(tb testing.TB, feeds ...feed) map[string][]float32 {
	tb.Helper()
	byName := map[string]feed{}
	for _, f := range feeds {
		byName[f.name] = f
	}
	var ins, outs []ort.Value
	defer func() {
		for _, v := range append(ins, outs...) {
			v.Destroy()
		}
	}()
	for _, info := range c.ins {
		f, ok := byName[info.Name]
		if !ok {
			tb.Fatalf("%s: no feed for input %q", c.path, info.Name)
		}
		ins = append(ins, newValue(tb, info.DataType, f.shape, f.data))
	}
	for _, info := range c.outs {
		shape, ok := c.outShape[info.Name]
		if !ok {
			tb.Fatalf("%s: no expected shape for output %q", c.path, info.Name)
		}
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		outs = append(outs, newValue(tb, info.DataType, shape, make([]float64, n)))
	}
	if err := c.sess.Run(ins, outs); err != nil {
		tb.Fatalf("%s: run: %v", c.path, err)
	}
	res := map[string][]float32{}
	for i, info := range c.outs {
		var vals []float32
		switch v := outs[i].(type) {
		case *ort.Tensor[float32]:
			vals = append(vals, v.GetData()...)
		case *ort.CustomDataTensor:
			raw := v.GetData()
			for j := 0; j+1 < len(raw); j += 2 {
				vals = append(vals, onnxgraph.Float16Value(binary.LittleEndian.Uint16(raw[j:])))
			}
		default:
			tb.Fatalf("%s: output %q has type %T", c.path, info.Name, outs[i])
		}
		for j, x := range vals {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				tb.Fatalf("%s: output %q[%d] = %v", c.path, info.Name, j, x)
			}
		}
		res[info.Name] = vals
	}
	return res
}

// differ reports whether a and b differ anywhere in [from, to) (to <= 0: the end).
func differ(a, b []float32, from, to int) bool {
	if to <= 0 || to > len(a) {
		to = len(a)
	}
	for i := from; i < to; i++ {
		if math.Abs(float64(a[i]-b[i])) > 1e-4 {
			return true
		}
	}
	return false
}
