package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DType is an ONNX tensor element type (TensorProto.DataType).
type DType int32

// The element types this writer can store. Values are onnx.proto's.
const (
	Float   DType = 1
	Uint8   DType = 2
	Int8    DType = 3
	Int32   DType = 6
	Int64   DType = 7
	Bool    DType = 9
	Float16 DType = 10
	Double  DType = 11
)

// Size returns the size in bytes of one element, or 0 for a type this package
// cannot store.
func (d DType) Size() int {
	switch d {
	case Uint8, Int8, Bool:
		return 1
	case Float16:
		return 2
	case Float, Int32:
		return 4
	case Int64, Double:
		return 8
	}
	return 0
}

// String returns the onnx.proto name of d.
func (d DType) String() string {
	switch d {
	case Float:
		return "FLOAT"
	case Uint8:
		return "UINT8"
	case Int8:
		return "INT8"
	case Int32:
		return "INT32"
	case Int64:
		return "INT64"
	case Bool:
		return "BOOL"
	case Float16:
		return "FLOAT16"
	case Double:
		return "DOUBLE"
	}
	return fmt.Sprintf("DType(%d)", int32(d))
}

// Dim is one dimension of a graph input or output: a fixed size, or a symbolic
// name (dim_param) that the runtime resolves per call, like "batch_size".
type Dim struct {
	Value int64
	Param string
}

// Fixed returns a dimension of fixed size n.
func Fixed(n int64) Dim { return Dim{Value: n} }

// Sym returns a symbolic (dynamic) dimension named name.
func Sym(name string) Dim { return Dim{Param: name} }

type valueInfo struct {
	name  string
	dtype DType
	dims  []Dim
}

type tensor struct {
	name  string
	dtype DType
	dims  []int64
	raw   []byte // little-endian element data, as raw_data wants
	// supplied marks a weight whose data the runtime is given at session
	// creation (ONNX Runtime's external initializers); the model holds only
	// its name, type and dims.
	supplied bool
}

type node struct {
	domain  string // "" for the default (ai.onnx) domain
	op      string
	inputs  []string
	outputs []string
	attrs   []Attr
}

// Graph is an ONNX graph under construction. Builder methods record the first
// error they meet (a data length that does not match the dims, say) and
// Model.Marshal returns it, so building code stays a flat list of calls.
type Graph struct {
	name    string
	inputs  []valueInfo
	outputs []valueInfo
	inits   []tensor
	nodes   []node
	err     error
}

// NewGraph returns an empty graph called name.
func NewGraph(name string) *Graph { return &Graph{name: name} }

// Err returns the first error a builder method recorded, if any.
func (g *Graph) Err() error { return g.err }

func (g *Graph) failf(format string, args ...any) {
	if g.err == nil {
		g.err = fmt.Errorf("onnxgraph: graph %q: "+format, append([]any{g.name}, args...)...)
	}
}

// Input declares a graph input. No dims makes it a rank-0 scalar.
func (g *Graph) Input(name string, dtype DType, dims ...Dim) {
	g.inputs = append(g.inputs, valueInfo{name: name, dtype: dtype, dims: dims})
}

// Output declares a graph output; some node must produce it.
func (g *Graph) Output(name string, dtype DType, dims ...Dim) {
	g.outputs = append(g.outputs, valueInfo{name: name, dtype: dtype, dims: dims})
}

// Initializer adds a constant tensor (a weight). data is a slice whose element
// type matches dtype: []float32 for Float (or for Float16, converted here),
// []uint16 holding float16 bits for Float16, []int64, []int32, []float64, []int8,
// []uint8 or []bool. Its length must be the product of dims (1 for no dims).
func (g *Graph) Initializer(name string, dtype DType, dims []int64, data any) {
	raw, err := encodeData(dtype, dims, data)
	if err != nil {
		g.failf("initializer %q: %w", name, err)
		return
	}
	g.inits = append(g.inits, tensor{name: name, dtype: dtype, dims: append([]int64(nil), dims...), raw: raw})
}

// SuppliedInitializer declares a weight whose data is not in the model: the
// program hands it to the runtime when it opens a session (ONNX Runtime's
// AddExternalInitializers), so a multi-gigabyte checkpoint is never copied into
// the model bytes. The model records it as external data at SuppliedLocation.
func (g *Graph) SuppliedInitializer(name string, dtype DType, dims []int64) {
	if _, err := numElements(dims); err != nil {
		g.failf("initializer %q: %w", name, err)
		return
	}
	g.inits = append(g.inits, tensor{name: name, dtype: dtype, dims: append([]int64(nil), dims...), supplied: true})
}

// ContribDomain is ONNX Runtime's operator domain (FusedMatMul, …), version 1.
const ContribDomain = "com.microsoft"

// NodeIn is Node for an operator of another domain (ContribDomain); the model
// imports each domain its nodes use.
func (g *Graph) NodeIn(domain, op string, inputs, outputs []string, attrs ...Attr) {
	g.Node(op, inputs, outputs, attrs...)
	g.nodes[len(g.nodes)-1].domain = domain
}

// Node appends a node running op (a default-domain operator) on inputs, writing
// outputs. Nodes must be added in topological order. An empty input name marks
// an omitted optional input.
func (g *Graph) Node(op string, inputs, outputs []string, attrs ...Attr) {
	for _, a := range attrs {
		if a.err != nil {
			g.failf("node %s -> %v: attribute %q: %w", op, outputs, a.name, a.err)
		}
	}
	g.nodes = append(g.nodes, node{
		op:      op,
		inputs:  append([]string(nil), inputs...),
		outputs: append([]string(nil), outputs...),
		attrs:   attrs,
	})
}

// check reports a node input that nothing defines before it, or a graph output
// that nothing produces: the mistakes a builder makes most, caught here with a
// clearer message than the runtime's.
func (g *Graph) check() error {
	if g.err != nil {
		return g.err
	}
	defined := make(map[string]bool)
	for _, in := range g.inputs {
		if defined[in.name] {
			return fmt.Errorf("onnxgraph: graph %q: input %q declared twice", g.name, in.name)
		}
		defined[in.name] = true
	}
	for _, t := range g.inits {
		if defined[t.name] {
			return fmt.Errorf("onnxgraph: graph %q: initializer %q clashes with another name", g.name, t.name)
		}
		defined[t.name] = true
	}
	for i, n := range g.nodes {
		for _, in := range n.inputs {
			if in != "" && !defined[in] {
				return fmt.Errorf("onnxgraph: graph %q: node %d (%s) reads %q, which nothing defines before it", g.name, i, n.op, in)
			}
		}
		for _, out := range n.outputs {
			if out == "" {
				continue
			}
			if defined[out] {
				return fmt.Errorf("onnxgraph: graph %q: node %d (%s) writes %q, which is already defined", g.name, i, n.op, out)
			}
			defined[out] = true
		}
	}
	for _, out := range g.outputs {
		if !defined[out.name] {
			return fmt.Errorf("onnxgraph: graph %q: output %q is never produced", g.name, out.name)
		}
	}
	return nil
}

func numElements(dims []int64) (int, error) {
	n := int64(1)
	for _, d := range dims {
		if d < 0 {
			return 0, fmt.Errorf("negative dim %d", d)
		}
		n *= d
	}
	return int(n), nil
}

// encodeData turns data into raw_data bytes for dtype, checking its length.
func encodeData(dtype DType, dims []int64, data any) ([]byte, error) {
	want, err := numElements(dims)
	if err != nil {
		return nil, err
	}
	size := dtype.Size()
	if size == 0 {
		return nil, fmt.Errorf("unsupported element type %v", dtype)
	}
	var n int
	raw := make([]byte, want*size)
	put := func(i int, bits uint64) {
		switch size {
		case 1:
			raw[i] = byte(bits)
		case 2:
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(bits))
		case 4:
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(bits))
		case 8:
			binary.LittleEndian.PutUint64(raw[8*i:], bits)
		}
	}
	mismatch := func() error { return fmt.Errorf("data %T does not suit element type %v", data, dtype) }
	switch v := data.(type) {
	case []float32:
		if dtype != Float && dtype != Float16 {
			return nil, mismatch()
		}
		if n = len(v); n == want {
			for i, f := range v {
				if dtype == Float16 {
					put(i, uint64(Float16Bits(f)))
				} else {
					put(i, uint64(math.Float32bits(f)))
				}
			}
		}
	case []uint16:
		if dtype != Float16 {
			return nil, mismatch()
		}
		if n = len(v); n == want {
			for i, h := range v {
				put(i, uint64(h))
			}
		}
	case []float64:
		if dtype != Double {
			return nil, mismatch()
		}
		if n = len(v); n == want {
			for i, f := range v {
				put(i, math.Float64bits(f))
			}
		}
	case []int64:
		if dtype != Int64 {
			return nil, mismatch()
		}
		if n = len(v); n == want {
			for i, x := range v {
				put(i, uint64(x))
			}
		}
	case []int32:
		if dtype != Int32 {
			return nil, mismatch()
		}
		if n = len(v); n == want {
			for i, x := range v {
				put(i, uint64(uint32(x)))
			}
		}
	case []int8:
		if dtype != Int8 {
			return nil, mismatch()
		}
		if n = len(v); n == want {
			for i, x := range v {
				put(i, uint64(uint8(x)))
			}
		}
	case []uint8:
		if dtype != Uint8 {
			return nil, mismatch()
		}
		if n = len(v); n == want {
			copy(raw, v)
		}
	case []bool:
		if dtype != Bool {
			return nil, mismatch()
		}
		if n = len(v); n == want {
			for i, b := range v {
				if b {
					raw[i] = 1
				}
			}
		}
	default:
		return nil, mismatch()
	}
	if n != want {
		return nil, fmt.Errorf("%d elements for dims %v, want %d", n, dims, want)
	}
	return raw, nil
}
