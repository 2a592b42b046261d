package safetensors

import (
	"encoding/binary"
	fx "github.com/diffute/diffute/internal/fixtures"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fixtures(t *testing.T) string {
	t.Helper()
	return fx.Path(t, "checkpoints")
}

func TestOpenFixtures(t *testing.T) {
	t.Parallel()
	dir := fixtures(t)
	f, err := Open(filepath.Join(dir, "sd15", "unet", "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.Metadata()["format"]; got != "pt" {
		t.Errorf("metadata format = %q, want pt", got)
	}
	ti, ok := f.Tensor("conv_in.weight")
	if !ok || ti.DType != F32 || len(ti.Shape) != 4 || ti.NumElements() != 32*4*3*3 {
		t.Fatalf("conv_in.weight = %+v, %v", ti, ok)
	}
	single, err := Open(filepath.Join(dir, "sd15.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	if len(single.Names()) != 990 {
		t.Errorf("sd15.safetensors has %d tensors, want 990", len(single.Names()))
	}
	// The single-file checkpoint is the folder's weights rounded to float16.
	k := "model.diffusion_model.input_blocks.0.0.weight"
	h, ok := single.Tensor(k)
	if !ok || h.DType != F16 {
		t.Fatalf("%s = %+v, %v", k, h, ok)
	}
	a := make([]float32, ti.NumElements())
	b := make([]float32, h.NumElements())
	if err := Float32Into(a, ti.DType, f.Bytes(ti)); err != nil {
		t.Fatal(err)
	}
	if err := Float32Into(b, h.DType, single.Bytes(h)); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if d := math.Abs(float64(a[i] - b[i])); d > 1e-3*math.Abs(float64(a[i]))+1e-7 {
			t.Fatalf("value %d: fp32 %g vs fp16 %g", i, a[i], b[i])
		}
	}
}

func TestWriteRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "w.safetensors")
	err := WriteFile(path, map[string]string{"format": "pt"}, []WriteTensor{
		{Name: "b", DType: F16, Shape: []int64{3}, Fill: func(d []byte) error {
			for i := range 3 {
				binary.LittleEndian.PutUint16(d[2*i:], 0x3c00) // 1.0
			}
			return nil
		}},
		{Name: "a", DType: F32, Shape: []int64{2, 2}, Fill: func(d []byte) error {
			for i := range 4 {
				binary.LittleEndian.PutUint32(d[4*i:], math.Float32bits(float32(i)+0.5))
			}
			return nil
		}},
		{Name: "c", DType: BF16, Shape: []int64{1}, Fill: func(d []byte) error {
			binary.LittleEndian.PutUint16(d, 0xc040) // -3.0
			return nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(raw); n%8 != 0 || !strings.HasPrefix(string(raw[8:]), `{"__metadata__":{"format":"pt"},"a":`) {
		t.Errorf("header %q", raw[8:8+n])
	}
	want := map[string][]float32{"a": {0.5, 1.5, 2.5, 3.5}, "b": {1, 1, 1}, "c": {-3}}
	for name, w := range want {
		ti, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("%s missing", name)
		}
		got := make([]float32, ti.NumElements())
		if err := Float32Into(got, ti.DType, f.Bytes(ti)); err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if got[i] != w[i] {
				t.Errorf("%s[%d] = %g, want %g", name, i, got[i], w[i])
			}
		}
		// DataOffset + Begin addresses the tensor in the file itself.
		if off := f.DataOffset() + ti.Begin; string(raw[off:off+ti.End-ti.Begin]) != string(f.Bytes(ti)) {
			t.Errorf("%s: bytes at DataOffset()+Begin (%d) are not the tensor's", name, off)
		}
	}
	if n := binary.LittleEndian.Uint64(raw); f.DataOffset() != 8+int64(n) {
		t.Errorf("DataOffset %d, want 8 + %d", f.DataOffset(), n)
	}
}

// build makes a file from a header and a data section.
func build(header string, data int) []byte {
	b := make([]byte, 8, 8+len(header)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func TestParseRejectsCorruptFiles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"short", []byte{1, 2, 3}, "shorter than the 8-byte header length"},
		{"header past end", func() []byte { b := build(`{}`, 0); binary.LittleEndian.PutUint64(b, 99); return b }(), "runs past the end"},
		{"huge header", func() []byte { b := build(`{}`, 0); binary.LittleEndian.PutUint64(b, 1<<40); return b }(), "exceeds the format's limit"},
		{"not json", build(`{"a":`, 0), "not a JSON object"},
		{"unknown dtype", build(`{"a":{"dtype":"F13","shape":[1],"data_offsets":[0,2]}}`, 2), `tensor "a": unknown dtype "F13"`},
		{"offsets past end", build(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 8), `tensor "a": data_offsets [0, 16] run past the end`},
		{"shape mismatch", build(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), `tensor "a": shape [3] of F32 needs 12 bytes`},
		{"overlap", build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), `tensor "b": data_offsets [4, 12] overlap tensor "a"`},
		{"gap", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "leave a gap"},
		{"trailing", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8), "truncated or trailing data"},
		{"negative shape", build(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "bad shape"},
		{"bad offsets", build(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, 4), "data_offsets must be"},
	}
	for _, c := range cases {
		_, err := Parse("x.safetensors", c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x.safetensors") {
			t.Errorf("%s: err = %v, want it to contain %q and the file name", c.name, err, c.want)
		}
	}
}

func TestOpenTruncatedFile(t *testing.T) {
	t.Parallel()
	dir := fixtures(t)
	raw, err := os.ReadFile(filepath.Join(dir, "sd15", "vae", "diffusion_pytorch_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cut.safetensors")
	if err := os.WriteFile(path, raw[:len(raw)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "cut.safetensors") {
		t.Fatalf("truncated file: err = %v", err)
	}
}

func TestHalfToFloat(t *testing.T) {
	t.Parallel()
	cases := map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x0001: 5.9604645e-08, 0x7bff: 65504, 0x0000: 0, 0x3555: 0.33325195}
	for h, want := range cases {
		if got := halfToFloat(h); got != want {
			t.Errorf("halfToFloat(%#x) = %g, want %g", h, got, want)
		}
	}
	if !math.IsInf(float64(halfToFloat(0x7c00)), 1) || !math.IsNaN(float64(halfToFloat(0x7e00))) {
		t.Error("inf/nan")
	}
}

func TestOpenIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	one := func(name string) []WriteTensor {
		return []WriteTensor{{Name: name, DType: F32, Shape: []int64{1}}}
	}
	if err := WriteFile(filepath.Join(dir, "m-00001.safetensors"), nil, one("a")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "m-00002.safetensors"), nil, one("b")); err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(dir, "m.safetensors.index.json")
	os.WriteFile(idx, []byte(`{"metadata":{},"weight_map":{"a":"m-00001.safetensors","b":"m-00002.safetensors"}}`), 0o644)
	s, err := OpenIndex(idx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, ok := s.Lookup("b"); !ok || len(s.Names()) != 2 {
		t.Fatalf("names %v", s.Names())
	}
	os.WriteFile(idx, []byte(`{"weight_map":{"a":"m-00002.safetensors"}}`), 0o644)
	if _, err := OpenIndex(idx); err == nil || !strings.Contains(err.Error(), `tensor "a" is not in shard`) {
		t.Fatalf("wrong shard: %v", err)
	}
	os.WriteFile(idx, []byte(`{"weight_map":{"a":"../x.safetensors"}}`), 0o644)
	if _, err := OpenIndex(idx); err == nil || !strings.Contains(err.Error(), "beside the index") {
		t.Fatalf("escaping shard: %v", err)
	}
}

func TestFloat32IntoEveryHalf(t *testing.T) {
	t.Parallel()
	src := make([]byte, 2<<16)
	for i := range 1 << 16 {
		binary.LittleEndian.PutUint16(src[2*i:], uint16(i))
	}
	dst := make([]float32, 1<<16)
	if err := Float32Into(dst, F16, src); err != nil {
		t.Fatal(err)
	}
	for i, v := range dst {
		want := halfToFloat(uint16(i))
		if math.Float32bits(v) != math.Float32bits(want) {
			t.Fatalf("half %#04x = %g (%#08x), want %g", i, v, math.Float32bits(v), want)
		}
	}
}

func BenchmarkFloat32IntoF16(b *testing.B) {
	src := make([]byte, 2<<20)
	for i := range 1 << 20 {
		binary.LittleEndian.PutUint16(src[2*i:], uint16(0x3000+i%0x1000))
	}
	dst := make([]float32, 1<<20)
	b.SetBytes(2 << 20)
	for b.Loop() {
		_ = Float32Into(dst, F16, src)
	}
}

// FuzzParse: any bytes are a file Parse accepts or refuses with an error naming
// it, never a panic; an accepted file's views stay inside it.
func FuzzParse(f *testing.F) {
	f.Add(build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8))
	f.Add(build(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[1,2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[],"data_offsets":[4,6]}}`, 6))
	f.Add(build(`{"a":{"dtype":"F32","shape":[9223372036854775807,2],"data_offsets":[0,8]}}`, 8))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse("fuzz.safetensors", b)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, n := range file.Names() {
			ti, _ := file.Tensor(n)
			if got := int64(len(file.Bytes(ti))); got != ti.NumElements()*int64(ti.DType.Size()) {
				t.Fatalf("%s: %d bytes for %v %s", n, got, ti.Shape, ti.DType)
			}
		}
	})
}
