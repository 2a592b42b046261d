package onnx

import "github.com/diffute/diffute/onnxgraph"

// float32ToHalf converts f to IEEE 754 binary16 bits, rounding to nearest even;
// values beyond the half range become ±Inf and NaN stays NaN. The conversion lives
// in onnxgraph, the package that owns ONNX's element types, so the tiny models'
// fp16 weights and the engine's fp16 tensors round alike.
func float32ToHalf(f float32) uint16 { return onnxgraph.Float16Bits(f) }

// halfToFloat32 converts IEEE 754 binary16 bits to float32 exactly.
func halfToFloat32(h uint16) float32 { return onnxgraph.Float16Value(h) }
