package checkpoint

import (
	"fmt"
	"sort"
	"strings"

	"github.com/diffute/diffute/safetensors"
)

// Weight is one parameter under its diffusers/transformers name.
type Weight struct {
	Name  string            // diffusers key, e.g. "down_blocks.0.resnets.0.conv1.weight"
	DType safetensors.DType // as stored: F32, F16 or BF16
	Shape []int64
	// Data is the little-endian data: a view of the mapped file where possible
	// (a q/k/v row range of an in_proj is contiguous, a 1x1 conv kernel reshaped
	// to a linear weight is the same bytes); a small fresh buffer only where the
	// bytes must move (a transposed text_projection).
	Data   []byte
	Origin string // "<file>: <tensor key in that file>" for error messages
	// File and Offset say where Data lies in a file on disk (the byte offset
	// from the file's start), so a graph can name the checkpoint's own bytes as
	// ONNX external data instead of copying them. File is "" when Data is a
	// fresh buffer (a transposed text_projection).
	File   string
	Offset int64
}

// NumElements is the product of the shape (1 for a scalar).
func (w Weight) NumElements() int64 {
	n := int64(1)
	for _, d := range w.Shape {
		n *= d
	}
	return n
}

// Float32 converts the weight's data to a new float32 slice.
func (w Weight) Float32() ([]float32, error) {
	dst := make([]float32, w.NumElements())
	if err := safetensors.Float32Into(dst, w.DType, w.Data); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", w.Origin, err)
	}
	return dst, nil
}

// Weights is a set of parameters of one component under diffusers names.
type Weights interface {
	Lookup(name string) (Weight, bool)
	Names() []string // sorted diffusers names
}

// weightMap is the Weights of both sources: built once at open, read-only after.
type weightMap struct {
	byName map[string]Weight
	names  []string
}

var _ Weights = (*weightMap)(nil)

func newWeightMap() *weightMap { return &weightMap{byName: map[string]Weight{}} }

// add records w; a second tensor mapped to the same name is an error naming both.
func (m *weightMap) add(w Weight) error {
	if prev, dup := m.byName[w.Name]; dup {
		return fmt.Errorf("checkpoint: %s and %s both map to %q", prev.Origin, w.Origin, w.Name)
	}
	m.byName[w.Name] = w
	m.names = nil
	return nil
}

func (m *weightMap) Lookup(name string) (Weight, bool) {
	w, ok := m.byName[name]
	return w, ok
}

func (m *weightMap) Names() []string {
	if m.names == nil {
		m.names = make([]string, 0, len(m.byName))
		for n := range m.byName {
			m.names = append(m.names, n)
		}
		sort.Strings(m.names)
	}
	return m.names
}

// finish sorts the names once, so Names is safe for concurrent readers.
func (m *weightMap) finish() *weightMap { m.Names(); return m }

// isWeightDType reports whether d is a type weights may be stored in.
func isWeightDType(d safetensors.DType) bool {
	return d == safetensors.F32 || d == safetensors.F16 || d == safetensors.BF16
}

func dtypeError(origin string, d safetensors.DType) error {
	return fmt.Errorf("checkpoint: %s: dtype %s is not a weight type (F32, F16 or BF16)", origin, d)
}

// isBuffer reports whether a key is a non-parameter buffer that transformers and
// diffusers ignore on load (older transformers saved position_ids, often as I64).
func isBuffer(key string) bool {
	return strings.HasSuffix(key, "embeddings.position_ids")
}

// summarize returns the dominant dtype (by bytes) and the total bytes of ws.
func summarize(ws *weightMap) (safetensors.DType, int64) {
	byType := map[safetensors.DType]int64{}
	var total int64
	for _, w := range ws.byName {
		byType[w.DType] += int64(len(w.Data))
		total += int64(len(w.Data))
	}
	var best safetensors.DType
	for _, d := range []safetensors.DType{safetensors.F32, safetensors.F16, safetensors.BF16} {
		if byType[d] > byType[best] {
			best = d
		}
	}
	return best, total
}
