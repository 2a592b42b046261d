package onnxgraph

import (
	"fmt"
	"math"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// Defaults of a new Model.
const (
	DefaultIRVersion        = 8
	DefaultOpset            = 17
	DefaultExternalMinBytes = 1024 // onnx.save's size_threshold
)

// Model is a graph with the header ONNX Runtime needs to run it.
type Model struct {
	Graph           *Graph
	IRVersion       int64
	Opset           int64 // version of the default ("ai.onnx") operator set
	ProducerName    string
	ProducerVersion string
	DocString       string
	// ExternalMinBytes is the smallest initializer that MarshalExternal moves to
	// the data file; smaller ones stay inline, as onnx.save does.
	ExternalMinBytes int
}

// NewModel wraps g with IR version 8, opset 17 and producer "diffute".
func NewModel(g *Graph) *Model {
	return &Model{
		Graph:            g,
		IRVersion:        DefaultIRVersion,
		Opset:            DefaultOpset,
		ProducerName:     "diffute",
		ExternalMinBytes: DefaultExternalMinBytes,
	}
}

// Marshal encodes the model with every initializer inline (raw_data). ONNX
// protobufs are limited to 2 GiB; this writer is meant for small models.
func (m *Model) Marshal() ([]byte, error) {
	model, _, err := m.marshal("")
	return model, err
}

// MarshalExternal encodes the model with every initializer of at least
// ExternalMinBytes moved to data, which must be saved as dataFile (a path
// relative to the model file, like "model.onnx_data") beside it. Offsets are
// aligned to 64 bytes so a runtime may map the file.
func (m *Model) MarshalExternal(dataFile string) (model, data []byte, err error) {
	if dataFile == "" {
		return nil, nil, fmt.Errorf("onnxgraph: MarshalExternal needs a data file name")
	}
	return m.marshal(dataFile)
}

func (m *Model) marshal(dataFile string) (model, data []byte, err error) {
	if m.Graph == nil {
		return nil, nil, fmt.Errorf("onnxgraph: model has no graph")
	}
	if err := m.Graph.check(); err != nil {
		return nil, nil, err
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType) // ir_version
	b = protowire.AppendVarint(b, uint64(m.IRVersion))
	if m.ProducerName != "" {
		b = appendString(b, 2, m.ProducerName)
	}
	if m.ProducerVersion != "" {
		b = appendString(b, 3, m.ProducerVersion)
	}
	if m.DocString != "" {
		b = appendString(b, 6, m.DocString)
	}
	graph, data, err := m.encodeGraph(dataFile)
	if err != nil {
		return nil, nil, err
	}
	b = appendMessage(b, 7, graph)
	// opset_import: the default domain is written as an absent domain field.
	var opset []byte
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, uint64(m.Opset))
	b = appendMessage(b, 8, opset)
	seen := map[string]bool{}
	for _, n := range m.Graph.nodes {
		if n.domain == "" || seen[n.domain] {
			continue
		}
		seen[n.domain] = true
		var imp []byte
		imp = appendString(imp, 1, n.domain) // OperatorSetIdProto.domain
		imp = protowire.AppendTag(imp, 2, protowire.VarintType)
		imp = protowire.AppendVarint(imp, 1)
		b = appendMessage(b, 8, imp)
	}
	return b, data, nil
}

func (m *Model) encodeGraph(dataFile string) (graph, data []byte, err error) {
	g := m.Graph
	var b []byte
	for _, n := range g.nodes {
		enc, err := encodeNode(n)
		if err != nil {
			return nil, nil, fmt.Errorf("onnxgraph: graph %q: %w", g.name, err)
		}
		b = appendMessage(b, 1, enc)
	}
	b = appendString(b, 2, g.name)
	for _, t := range g.inits {
		var enc []byte
		if t.supplied {
			enc = encodeSuppliedTensor(t)
		} else if dataFile != "" && len(t.raw) >= m.ExternalMinBytes && len(t.raw) > 0 {
			for len(data)%64 != 0 {
				data = append(data, 0)
			}
			offset := len(data)
			data = append(data, t.raw...)
			enc = encodeExternalTensor(t, dataFile, offset)
		} else {
			enc = encodeTensor(t)
		}
		b = appendMessage(b, 5, enc)
	}
	for _, v := range g.inputs {
		b = appendMessage(b, 11, encodeValueInfo(v))
	}
	for _, v := range g.outputs {
		b = appendMessage(b, 12, encodeValueInfo(v))
	}
	return b, data, nil
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// encodeTensorHeader writes the fields every TensorProto has: dims (1, unpacked
// as proto2 writes repeated scalars), data_type (2) and name (8).
func encodeTensorHeader(t tensor) []byte {
	var b []byte
	for _, d := range t.dims {
		b = appendVarint(b, 1, uint64(d))
	}
	b = appendVarint(b, 2, uint64(t.dtype))
	if t.name != "" {
		b = appendString(b, 8, t.name)
	}
	return b
}

func encodeTensor(t tensor) []byte {
	b := encodeTensorHeader(t)
	b = protowire.AppendTag(b, 9, protowire.BytesType) // raw_data
	return protowire.AppendBytes(b, t.raw)
}

// encodeExternalTensor writes external_data (13) entries location, offset and
// length, and data_location (14) EXTERNAL.
func encodeExternalTensor(t tensor, dataFile string, offset int) []byte {
	b := encodeTensorHeader(t)
	for _, kv := range [][2]string{
		{"location", dataFile},
		{"offset", strconv.Itoa(offset)},
		{"length", strconv.Itoa(len(t.raw))},
	} {
		var e []byte
		e = appendString(e, 1, kv[0])
		e = appendString(e, 2, kv[1])
		b = appendMessage(b, 13, e)
	}
	return appendVarint(b, 14, 1)
}

// SuppliedLocation is the external-data location of a supplied initializer: a
// name no file has, so a runtime that was not handed the data fails loudly.
const SuppliedLocation = "diffute-supplied-initializer"

func encodeSuppliedTensor(t tensor) []byte {
	n, _ := numElements(t.dims)
	b := encodeTensorHeader(t)
	for _, kv := range [][2]string{
		{"location", SuppliedLocation},
		{"offset", "0"},
		{"length", strconv.Itoa(n * t.dtype.Size())},
	} {
		var e []byte
		e = appendString(e, 1, kv[0])
		e = appendString(e, 2, kv[1])
		b = appendMessage(b, 13, e)
	}
	return appendVarint(b, 14, 1)
}

// encodeValueInfo writes a ValueInfoProto: name (1) and a TypeProto (2) whose
// tensor_type (1) holds elem_type (1) and a shape (2) of dims, each with
// dim_value (1) or dim_param (2). A rank-0 value still gets an empty shape, which
// is what says "scalar" rather than "unknown rank".
func encodeValueInfo(v valueInfo) []byte {
	var shape []byte
	for _, d := range v.dims {
		var dim []byte
		if d.Param != "" {
			dim = appendString(dim, 2, d.Param)
		} else {
			dim = appendVarint(dim, 1, uint64(d.Value))
		}
		shape = appendMessage(shape, 1, dim)
	}
	var tt []byte
	tt = appendVarint(tt, 1, uint64(v.dtype))
	tt = appendMessage(tt, 2, shape)
	var typ []byte
	typ = appendMessage(typ, 1, tt)
	var b []byte
	b = appendString(b, 1, v.name)
	return appendMessage(b, 2, typ)
}

// encodeNode writes a NodeProto: input (1), output (2), name (3), op_type (4) and
// attributes (5).
func encodeNode(n node) ([]byte, error) {
	var b []byte
	for _, in := range n.inputs {
		b = appendString(b, 1, in)
	}
	for _, out := range n.outputs {
		b = appendString(b, 2, out)
	}
	if len(n.outputs) > 0 {
		b = appendString(b, 3, n.op+"_"+n.outputs[0])
	}
	b = appendString(b, 4, n.op)
	if n.domain != "" {
		b = appendString(b, 7, n.domain) // NodeProto.domain
	}
	for _, a := range n.attrs {
		enc, err := encodeAttr(a)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n.op, err)
		}
		b = appendMessage(b, 5, enc)
	}
	return b, nil
}

// encodeAttr writes an AttributeProto: name (1), the value field of its kind (f 2,
// i 3, s 4, t 5, floats 7, ints 8, strings 9) and type (20).
func encodeAttr(a Attr) ([]byte, error) {
	if a.err != nil {
		return nil, fmt.Errorf("attribute %q: %w", a.name, a.err)
	}
	var b []byte
	b = appendString(b, 1, a.name)
	switch a.kind {
	case attrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.f))
	case attrInt:
		b = appendVarint(b, 3, uint64(a.i))
	case attrString:
		b = appendString(b, 4, a.s)
	case attrTensor:
		b = appendMessage(b, 5, encodeTensor(*a.t))
	case attrFloats:
		for _, f := range a.floats {
			b = protowire.AppendTag(b, 7, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(f))
		}
	case attrInts:
		for _, i := range a.ints {
			b = appendVarint(b, 8, uint64(i))
		}
	case attrStrings:
		for _, s := range a.strings {
			b = appendString(b, 9, s)
		}
	default:
		return nil, fmt.Errorf("attribute %q has no value", a.name)
	}
	return appendVarint(b, 20, uint64(a.kind)), nil
}
