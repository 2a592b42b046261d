// Package onnxgraph owns Diffute's ONNX model writer: a small builder for graphs
// (inputs and outputs with fixed or symbolic dims, initializers, nodes with
// attributes) and a hand encoder of the subset of onnx.proto those need
// (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto with raw_data or
// external data, ValueInfoProto/TypeProto, OperatorSetIdProto).
//
// It exists so the project can generate its own tiny test models (package
// tinymodel) without Python or downloaded weights. The encoder is written on
// google.golang.org/protobuf/encoding/protowire alone: no generated code, no
// .proto files. Field numbers follow onnx/onnx.proto (IR version 8); models default
// to IR version 8 and the default-domain opset 17, which ONNX Runtime 1.24 runs.
//
// Output is deterministic: the same graph always marshals to the same bytes, which
// is what lets tinymodel promise byte-identical regenerated models.
package onnxgraph
