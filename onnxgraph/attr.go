package onnxgraph

// attrKind is AttributeProto.AttributeType.
type attrKind int32

const (
	attrFloat   attrKind = 1
	attrInt     attrKind = 2
	attrString  attrKind = 3
	attrTensor  attrKind = 4
	attrFloats  attrKind = 6
	attrInts    attrKind = 7
	attrStrings attrKind = 8
)

// Attr is a node attribute. Build one with AttrInt, AttrFloat, AttrString,
// AttrInts, AttrFloats, AttrStrings or AttrTensor.
type Attr struct {
	name    string
	kind    attrKind
	i       int64
	f       float32
	s       string
	ints    []int64
	floats  []float32
	strings []string
	t       *tensor
	err     error // a bad AttrTensor payload, reported by Graph.Node
}

// AttrInt returns an INT attribute.
func AttrInt(name string, v int64) Attr { return Attr{name: name, kind: attrInt, i: v} }

// AttrFloat returns a FLOAT attribute.
func AttrFloat(name string, v float32) Attr { return Attr{name: name, kind: attrFloat, f: v} }

// AttrString returns a STRING attribute.
func AttrString(name, v string) Attr { return Attr{name: name, kind: attrString, s: v} }

// AttrInts returns an INTS attribute.
func AttrInts(name string, v ...int64) Attr {
	return Attr{name: name, kind: attrInts, ints: append([]int64(nil), v...)}
}

// AttrFloats returns a FLOATS attribute.
func AttrFloats(name string, v ...float32) Attr {
	return Attr{name: name, kind: attrFloats, floats: append([]float32(nil), v...)}
}

// AttrStrings returns a STRINGS attribute.
func AttrStrings(name string, v ...string) Attr {
	return Attr{name: name, kind: attrStrings, strings: append([]string(nil), v...)}
}

// AttrTensor returns a TENSOR attribute (the "value" of a Constant node, say),
// with data as for Graph.Initializer. The tensor is always stored inline.
func AttrTensor(name string, dtype DType, dims []int64, data any) Attr {
	raw, err := encodeData(dtype, dims, data)
	return Attr{name: name, kind: attrTensor, t: &tensor{dtype: dtype, dims: append([]int64(nil), dims...), raw: raw}, err: err}
}
