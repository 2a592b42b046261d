package checkpoint

import (
	"bytes"
	"encoding/binary"
	fx "github.com/diffute/diffute/internal/fixtures"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/diffute/diffute/safetensors"
)

// fixtures is the reference data folder (package internal/fixtures).
func fixtures(t *testing.T) string {
	t.Helper()
	fx.Path(t, "checkpoints")
	return fx.Path(t)
}

// toHalf rounds a float32 to the nearest IEEE binary16, ties to even, as
// torch's .half() does.
func toHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		h := m >> shift
		rem, mid := m&(1<<shift-1), uint32(1)<<(shift-1)
		if rem > mid || rem == mid && h&1 == 1 {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || rem == 0x1000 && h&1 == 1 {
		h++ // a carry into the exponent is the right rounding
	}
	return sign | uint16(h)
}

func TestToHalf(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00}, {0.1, 0x2e66},
		{5.960464477539063e-08, 0x0001}, {2.98e-08, 0x0000}, {float32(math.Inf(-1)), 0xfc00},
		{1 + 1.0/2048, 0x3c00}, {1 + 3.0/2048, 0x3c02}, // ties to even
	} {
		if got := toHalf(c.f); got != c.want {
			t.Errorf("toHalf(%g) = %#04x, want %#04x", c.f, got, c.want)
		}
	}
}

// halfOf is the fp16 rounding of a float32 weight, as little-endian bytes.
func halfOf(t *testing.T, w Weight) []byte {
	t.Helper()
	if w.DType != safetensors.F32 {
		t.Fatalf("%s: want an F32 reference, got %s", w.Origin, w.DType)
	}
	out := make([]byte, len(w.Data)/2)
	for i := range len(w.Data) / 4 {
		binary.LittleEndian.PutUint16(out[2*i:], toHalf(math.Float32frombits(binary.LittleEndian.Uint32(w.Data[4*i:]))))
	}
	return out
}

// TestSingleFileMatchesDiffusersFolder is the fidelity check of the ldm
// mapping: sd15.safetensors and sdxl.safetensors were written by diffusers'
// own conversion scripts (--half) from the folders beside them, so every
// tensor of each folder must come back from the single file under its own
// name, with its shape, as its float32 values rounded to float16, and nothing
// else may come back.
func TestSingleFileMatchesDiffusersFolder(t *testing.T) {
	t.Parallel()
	root := filepath.Join(fixtures(t), "checkpoints")
	for _, c := range []struct {
		name   string
		family Family
		comps  []string
	}{
		{"sd15", SD1, []string{UNet, VAE, TextEncoder}},
		{"sdxl", SDXL, []string{UNet, VAE, TextEncoder, TextEncoder2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sf, err := OpenSingleFile(filepath.Join(root, c.name+".safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			if sf.Family != c.family {
				t.Fatalf("family %q, want %q", sf.Family, c.family)
			}
			if sf.Precision != safetensors.F16 {
				t.Errorf("precision %s, want F16", sf.Precision)
			}
			var comps []string
			for k := range sf.Components {
				comps = append(comps, k)
			}
			slices.Sort(comps)
			if want := slices.Sorted(slices.Values(c.comps)); !slices.Equal(comps, want) {
				t.Fatalf("components %v, want %v", comps, want)
			}
			total := 0
			for _, comp := range c.comps {
				folder, err := OpenComponent(filepath.Join(root, c.name, comp), ComponentOptions{Variant: "fp32"})
				if err != nil {
					t.Fatal(err)
				}
				defer folder.Close()
				got := sf.Components[comp]
				for _, name := range folder.Weights.Names() {
					ref, _ := folder.Weights.Lookup(name)
					w, ok := got.Lookup(name)
					if !ok {
						t.Errorf("%s: %s: missing from the single file", comp, name)
						continue
					}
					if !slices.Equal(w.Shape, ref.Shape) {
						t.Errorf("%s: %s (from %s): shape %v, want %v", comp, name, w.Origin, w.Shape, ref.Shape)
						continue
					}
					if w.DType != safetensors.F16 {
						t.Errorf("%s: %s: dtype %s, want F16", comp, name, w.DType)
						continue
					}
					if !bytes.Equal(w.Data, halfOf(t, ref)) {
						t.Errorf("%s: %s (from %s): values differ from the folder's rounded to fp16", comp, name, w.Origin)
					}
				}
				for _, name := range got.Names() {
					if _, ok := folder.Weights.Lookup(name); !ok {
						w, _ := got.Lookup(name)
						t.Errorf("%s: %s (from %s): not a tensor of the diffusers folder", comp, name, w.Origin)
					}
				}
				total += len(folder.Weights.Names())
			}
			checkFileOffsets(t, sf.Components)
			if total < 900 {
				t.Fatalf("only %d tensors compared", total)
			}
		})
	}
}

// TestMappedDataAreViews checks the promise about memory: q/k/v slices and
// reshaped 1x1 kernels alias the mapped file; only text_projection is copied.
func TestMappedDataAreViews(t *testing.T) {
	t.Parallel()
	path := filepath.Join(fixtures(t), "checkpoints", "sdxl.safetensors")
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sf, err := OpenSingleFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	// Two mappings of one file differ, so compare against the single file's own
	// tensor bytes through its origin instead: a view starts inside the tensor.
	inProj, _ := f.Tensor("conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight")
	whole := f.Bytes(inProj)
	k, _ := sf.Components[TextEncoder2].Lookup("text_model.encoder.layers.0.self_attn.k_proj.weight")
	if !bytes.Equal(k.Data, whole[len(whole)/3:2*len(whole)/3]) {
		t.Fatal("k_proj is not the middle third of in_proj_weight")
	}
	if cap(k.Data) != len(k.Data) {
		t.Errorf("a view's capacity %d runs past its %d bytes", cap(k.Data), len(k.Data))
	}
	q, _ := sf.Components[TextEncoder2].Lookup("text_model.encoder.layers.0.self_attn.q_proj.weight")
	v, _ := sf.Components[TextEncoder2].Lookup("text_model.encoder.layers.0.self_attn.v_proj.weight")
	addr := func(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
	if addr(k.Data) != addr(q.Data)+uintptr(len(q.Data)) || addr(v.Data) != addr(k.Data)+uintptr(len(k.Data)) {
		t.Error("q, k and v are not adjacent views of one in_proj tensor")
	}
	p, _ := sf.Components[TextEncoder2].Lookup("text_projection.weight")
	if !slices.Equal(p.Shape, []int64{12, 4}) {
		t.Errorf("text_projection shape %v, want [12 4]", p.Shape)
	}
	if !strings.Contains(k.Origin, "sdxl.safetensors: conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight") {
		t.Errorf("origin %q does not name the file and key", k.Origin)
	}
}

// checkFileOffsets reads each weight's bytes back from its file at its
// offset: what ONNX external data pointing into the checkpoint will read.
func checkFileOffsets(t *testing.T, comps map[string]Weights) {
	t.Helper()
	files := map[string][]byte{}
	copies := 0
	for comp, ws := range comps {
		for _, n := range ws.Names() {
			w, _ := ws.Lookup(n)
			if w.File == "" {
				copies++
				continue
			}
			raw, ok := files[w.File]
			if !ok {
				var err error
				if raw, err = os.ReadFile(w.File); err != nil {
					t.Fatal(err)
				}
				files[w.File] = raw
			}
			if w.Offset < 0 || w.Offset+int64(len(w.Data)) > int64(len(raw)) || !bytes.Equal(raw[w.Offset:w.Offset+int64(len(w.Data))], w.Data) {
				t.Errorf("%s %s: bytes at %s offset %d are not its data", comp, n, w.File, w.Offset)
			}
		}
	}
	if copies > 1 {
		t.Errorf("%d weights are copies; only text_projection should be", copies)
	}
}
