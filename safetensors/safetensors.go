package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"unsafe"
)

// DType is a safetensors element type, spelled as in the header ("F16", "BF16", …).
type DType string

// The element types the format defines.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	Bool DType = "BOOL"
)

// Size is the byte size of one element, or 0 for a type this package does not know.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16, I16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// IsFloat reports whether d is a floating-point type Float32Into converts.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 || d == F64 }

// maxHeader bounds the JSON header, as the reference implementation does (100 MB).
const maxHeader = 100 << 20

// Tensor describes one tensor of a file. Begin and End are byte offsets into the
// data section (after the header), as in the header's data_offsets.
type Tensor struct {
	Name       string
	DType      DType
	Shape      []int64
	Begin, End int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open safetensors file, mapped read-only into memory.
type File struct {
	path       string
	mapped     []byte // the whole file
	unmap      func([]byte) error
	data       []byte // the data section, a view of mapped
	tensors    map[string]Tensor
	names      []string
	metadata   map[string]string
	dataOffset int64 // of the data section in the file
}

// Open maps path and validates its header.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("safetensors: %s: not a regular file", path)
	}
	mapped, unmap, err := mapFile(fh, st.Size())
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	f, err := parse(path, mapped)
	if err != nil {
		_ = unmap(mapped)
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Parse validates an in-memory safetensors file; name is used in errors. The
// returned File's views alias b.
func Parse(name string, b []byte) (*File, error) { return parse(name, b) }

type headerEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

func parse(path string, b []byte) (*File, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("safetensors: %s: %s", path, fmt.Sprintf(format, args...))
	}
	if len(b) < 8 {
		return nil, bad("file is %d bytes, shorter than the 8-byte header length (truncated?)", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeader {
		return nil, bad("header length %d exceeds the format's limit of %d bytes (not a safetensors file?)", n, maxHeader)
	}
	if n > uint64(len(b)-8) {
		return nil, bad("header length %d runs past the end of the %d-byte file (truncated?)", n, len(b))
	}
	raw := map[string]json.RawMessage{}
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, bad("header is not a JSON object: %v", err)
	}
	f := &File{path: path, mapped: b, unmap: func([]byte) error { return nil }, data: b[8+n:], tensors: map[string]Tensor{}}
	f.dataOffset = 8 + int64(n)
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.metadata); err != nil {
				return nil, bad("__metadata__ is not an object of strings: %v", err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, bad("tensor %q: %v", name, err)
		}
		t, err := checkEntry(name, e, int64(len(f.data)))
		if err != nil {
			return nil, bad("%v", err)
		}
		f.tensors[name] = t
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	// The data section is exactly the tensors' ranges, end to end, as the
	// reference implementation requires: no overlap, no gap, nothing after.
	byStart := slices.Clone(f.names)
	sort.Slice(byStart, func(i, j int) bool {
		a, c := f.tensors[byStart[i]], f.tensors[byStart[j]]
		if a.Begin != c.Begin {
			return a.Begin < c.Begin
		}
		return a.End < c.End
	})
	var end int64
	prev := ""
	for _, name := range byStart {
		t := f.tensors[name]
		switch {
		case t.Begin < end:
			return nil, bad("tensor %q: data_offsets [%d, %d] overlap tensor %q (ends at %d)", name, t.Begin, t.End, prev, end)
		case t.Begin > end:
			return nil, bad("tensor %q: data_offsets [%d, %d] leave a gap after byte %d", name, t.Begin, t.End, end)
		}
		end, prev = t.End, name
	}
	if end != int64(len(f.data)) {
		return nil, bad("tensors cover %d bytes but the data section holds %d (truncated or trailing data)", end, len(f.data))
	}
	return f, nil
}

func checkEntry(name string, e headerEntry, dataLen int64) (Tensor, error) {
	size := e.DType.Size()
	if size == 0 {
		return Tensor{}, fmt.Errorf("tensor %q: unknown dtype %q", name, e.DType)
	}
	if len(e.DataOffsets) != 2 {
		return Tensor{}, fmt.Errorf("tensor %q: data_offsets must be [begin, end], got %v", name, e.DataOffsets)
	}
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	if begin < 0 || end < begin {
		return Tensor{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] are not a range", name, begin, end)
	}
	if end > dataLen {
		return Tensor{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the end of the data (%d bytes; truncated?)", name, begin, end, dataLen)
	}
	elems := int64(1)
	for _, d := range e.Shape {
		if d < 0 || (d > 0 && elems > math.MaxInt64/d) {
			return Tensor{}, fmt.Errorf("tensor %q: bad shape %v", name, e.Shape)
		}
		elems *= d
	}
	if elems > math.MaxInt64/int64(size) || elems*int64(size) != end-begin {
		return Tensor{}, fmt.Errorf("tensor %q: shape %v of %s needs %d bytes but data_offsets [%d, %d] hold %d", name, e.Shape, e.DType, elems*int64(size), begin, end, end-begin)
	}
	return Tensor{Name: name, DType: e.DType, Shape: e.Shape, Begin: begin, End: end}, nil
}

// Path is the file's path.
func (f *File) Path() string { return f.path }

// Names lists the tensors, sorted.
func (f *File) Names() []string { return f.names }

// Metadata is the header's __metadata__ (nil when absent).
func (f *File) Metadata() map[string]string { return f.metadata }

// Tensor looks a tensor up by name.
func (f *File) Tensor(name string) (Tensor, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// Bytes is the tensor's raw little-endian data: a view of the mapping, valid
// until Close.
func (f *File) Bytes(t Tensor) []byte { return f.data[t.Begin:t.End:t.End] }

// DataOffset is where the data section starts in the file (8 + the header
// length): a tensor's bytes lie at DataOffset() + Begin, which is what ONNX
// external data needs to point into the file itself.
func (f *File) DataOffset() int64 { return f.dataOffset }

// DataBytes is the size of the data section.
func (f *File) DataBytes() int64 { return int64(len(f.data)) }

// Close unmaps the file. Views returned by Bytes are invalid afterwards.
func (f *File) Close() error {
	if f.mapped == nil {
		return nil
	}
	err := f.unmap(f.mapped)
	f.mapped, f.data = nil, nil
	return err
}

// Float32Into converts a floating-point tensor's data to float32 into dst, which
// must hold exactly NumElements values.
func Float32Into(dst []float32, dtype DType, src []byte) error {
	size := dtype.Size()
	if !dtype.IsFloat() {
		return fmt.Errorf("safetensors: cannot convert %s to float32", dtype)
	}
	if len(src) != len(dst)*size {
		return fmt.Errorf("safetensors: %d bytes of %s for %d values", len(src), dtype, len(dst))
	}
	switch dtype {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		lut := halfTable()
		if littleEndian {
			// The common case: read the halves in place, one table load each.
			// Normal numbers (nearly every weight) are a shift and a rebias;
			// zeros, subnormals, infinities and NaNs go through the table.
			h := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(src))), len(dst))
			for i, v := range h {
				if e := v & 0x7c00; e != 0 && e != 0x7c00 {
					dst[i] = math.Float32frombits(uint32(v&0x8000)<<16 | (uint32(v&0x7fff)<<13 + 112<<23))
				} else {
					dst[i] = lut[v]
				}
			}
			break
		}
		for i := range dst {
			dst[i] = lut[binary.LittleEndian.Uint16(src[2*i:])]
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	}
	return nil
}

var (
	halfOnce sync.Once
	halfLUT  *[1 << 16]float32
)

// halfTable is every binary16 value as float32 (256 KiB): a table load converts
// faster than the bit manipulation, which matters for multi-gigabyte UNets.
func halfTable() *[1 << 16]float32 {
	halfOnce.Do(func() {
		halfLUT = new([1 << 16]float32)
		for i := range halfLUT {
			halfLUT[i] = halfToFloat(uint16(i))
		}
	})
	return halfLUT
}

// HalfTable is the float32 value of every binary16 bit pattern.
func HalfTable() *[1 << 16]float32 { return halfTable() }

// littleEndian reports the host's byte order; the format is little-endian.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// halfToFloat converts IEEE binary16 bits to float32 exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// subnormal: normalise
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// Set is a checkpoint whose tensors may be spread over several files (shards).
type Set struct {
	files  []*File
	byName map[string]*File
}

// OpenFiles opens each path and merges their tensors; a tensor in two files is an
// error naming both.
func OpenFiles(paths ...string) (*Set, error) {
	s := &Set{byName: map[string]*File{}}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.files = append(s.files, f)
		for _, n := range f.Names() {
			if other, dup := s.byName[n]; dup {
				s.Close()
				return nil, fmt.Errorf("safetensors: tensor %q is in both %s and %s", n, other.Path(), p)
			}
			s.byName[n] = f
		}
	}
	return s, nil
}

// OpenIndex opens a sharded checkpoint from its index file
// (model.safetensors.index.json: {"weight_map": {tensor: shard file}}), with the
// shards beside it. Every tensor the index names must be in its shard.
func OpenIndex(indexPath string) (*Set, error) {
	b, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("safetensors: %s: empty weight_map", indexPath)
	}
	dir := filepath.Dir(indexPath)
	var shards []string
	for _, shard := range idx.WeightMap {
		if filepath.Base(shard) != shard || shard == "." || shard == ".." {
			return nil, fmt.Errorf("safetensors: %s: shard %q must be a file name beside the index", indexPath, shard)
		}
		if !slices.Contains(shards, shard) {
			shards = append(shards, shard)
		}
	}
	sort.Strings(shards)
	paths := make([]string, len(shards))
	for i, sh := range shards {
		paths[i] = filepath.Join(dir, sh)
	}
	s, err := OpenFiles(paths...)
	if err != nil {
		return nil, err
	}
	for name, shard := range idx.WeightMap {
		f, ok := s.byName[name]
		if !ok || filepath.Base(f.Path()) != shard {
			s.Close()
			return nil, fmt.Errorf("safetensors: %s: tensor %q is not in shard %s", indexPath, name, shard)
		}
	}
	return s, nil
}

// Lookup finds a tensor and the file holding it.
func (s *Set) Lookup(name string) (*File, Tensor, bool) {
	f, ok := s.byName[name]
	if !ok {
		return nil, Tensor{}, false
	}
	t, _ := f.Tensor(name)
	return f, t, true
}

// Names lists every tensor of the set, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Files are the set's files, in the order opened.
func (s *Set) Files() []*File { return s.files }

// Close closes every file.
func (s *Set) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	s.files = nil
	return errors.Join(errs...)
}
