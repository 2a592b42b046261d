package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// WriteTensor is one tensor to write. Fill writes its little-endian data into
// dst, which holds exactly NumElements × DType.Size() bytes; it is called once,
// in file order, so a multi-gigabyte checkpoint is never held in memory at once.
type WriteTensor struct {
	Name  string
	DType DType
	Shape []int64
	Fill  func(dst []byte) error
}

func (t WriteTensor) bytes() int64 {
	n := int64(t.DType.Size())
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// WriteFile writes a safetensors file atomically (temporary file, sync, rename)
// with Write's layout.
func WriteFile(path string, metadata map[string]string, tensors []WriteTensor) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.safetensors")
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := Write(tmp, metadata, tensors); err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// Write streams a safetensors file to out in the layout the safetensors library
// writes: metadata first, tensors ordered by element size (largest first, which
// keeps every tensor aligned to its element size) and then by name, the header
// padded with spaces to a multiple of 8.
func Write(out io.Writer, metadata map[string]string, tensors []WriteTensor) error {
	ts := append([]WriteTensor(nil), tensors...)
	sort.SliceStable(ts, func(i, j int) bool {
		if a, b := ts[i].DType.Size(), ts[j].DType.Size(); a != b {
			return a > b
		}
		return ts[i].Name < ts[j].Name
	})
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			hdr.WriteByte(',')
		}
		first = false
	}
	if len(metadata) > 0 {
		sep()
		m, _ := json.Marshal(metadata) // map keys come out sorted
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(m)
	}
	var off int64
	seen := map[string]bool{}
	for _, t := range ts {
		if t.DType.Size() == 0 {
			return fmt.Errorf("tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		if seen[t.Name] || t.Name == "__metadata__" {
			return fmt.Errorf("tensor name %q repeated or reserved", t.Name)
		}
		seen[t.Name] = true
		sep()
		name, _ := json.Marshal(t.Name)
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		e, _ := json.Marshal(headerEntry{DType: t.DType, Shape: shape, DataOffsets: []int64{off, off + t.bytes()}})
		hdr.Write(name)
		hdr.WriteByte(':')
		hdr.Write(e)
		off += t.bytes()
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	w := bufio.NewWriterSize(out, 1<<20)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(hdr.Len()))
	// A bufio.Writer's first error sticks and comes back from the writes and
	// the Flush below.
	_, _ = w.Write(n[:])
	_, _ = w.Write(hdr.Bytes())
	var buf []byte
	for _, t := range ts {
		size := t.bytes()
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		b := buf[:size]
		clear(b)
		if t.Fill != nil {
			if err := t.Fill(b); err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, err)
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return w.Flush()
}
