// Package safetensors reads and writes the safetensors format of Hugging Face
// checkpoints: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data.
//
// Open maps a file into memory and validates its header as strictly as the
// reference implementation does (header length within the file, known dtypes,
// byte ranges that match dtype × shape, in bounds, contiguous and non-overlapping),
// so a truncated or corrupt checkpoint is refused with an error naming the file and
// the tensor, never a panic and never a silently wrong weight. Tensor data is handed
// out as views of the mapping: nothing is copied until a caller converts it
// (Float32Into), which is what lets the engine feed multi-gigabyte checkpoints to
// ONNX Runtime without a second copy.
//
// OpenIndex opens a sharded checkpoint through its *.safetensors.index.json. Write
// streams a file tensor by tensor, with the layout the safetensors library writes.
package safetensors
