package checkpoint

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/diffute/diffute/safetensors"
)

func TestOpenComponentPrefersFP16(t *testing.T) {
	t.Parallel()
	root := filepath.Join(fixtures(t), "checkpoints", "sd21v")
	for _, c := range []struct{ comp, file string }{
		{UNet, "diffusion_pytorch_model"},
		{VAE, "diffusion_pytorch_model"},
		{TextEncoder, "model"},
	} {
		dir := filepath.Join(root, c.comp)
		half, err := OpenComponent(dir, ComponentOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer half.Close()
		full, err := OpenComponent(dir, ComponentOptions{Variant: "fp32"})
		if err != nil {
			t.Fatal(err)
		}
		defer full.Close()
		if want := []string{filepath.Join(dir, c.file+".fp16.safetensors")}; !slices.Equal(half.Files, want) {
			t.Errorf("%s default: files %v, want %v", c.comp, half.Files, want)
		}
		if want := []string{filepath.Join(dir, c.file+".safetensors")}; !slices.Equal(full.Files, want) {
			t.Errorf("%s fp32: files %v, want %v", c.comp, full.Files, want)
		}
		if half.Precision != safetensors.F16 || full.Precision != safetensors.F32 {
			t.Errorf("%s: precisions %s / %s, want F16 / F32", c.comp, half.Precision, full.Precision)
		}
		if half.Bytes*2 != full.Bytes {
			t.Errorf("%s: %d fp16 bytes vs %d fp32 bytes", c.comp, half.Bytes, full.Bytes)
		}
		if cfg, _ := os.ReadFile(filepath.Join(dir, "config.json")); len(cfg) == 0 || !bytes.Equal(half.Config, cfg) {
			t.Errorf("%s: config.json not read: %.60q", c.comp, half.Config)
		}
		checkFileOffsets(t, map[string]Weights{c.comp: half.Weights, c.comp + "/fp32": full.Weights})
		if !slices.Equal(half.Weights.Names(), full.Weights.Names()) {
			t.Fatalf("%s: the variants name different tensors", c.comp)
		}
		for _, n := range full.Weights.Names() {
			f, _ := full.Weights.Lookup(n)
			h, _ := half.Weights.Lookup(n)
			if !bytes.Equal(h.Data, halfOf(t, f)) {
				t.Errorf("%s: %s: the fp16 variant is not the fp32 weights rounded", c.comp, n)
			}
		}
	}
	// Forcing a variant the folder lacks names the folder and what was wanted.
	_, err := OpenComponent(filepath.Join(root, UNet), ComponentOptions{Variant: "bf16"})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, UNet)) || !strings.Contains(err.Error(), "bf16") {
		t.Errorf("missing bf16 variant: %v", err)
	}
}

// TestOpenComponentSharded writes the sd21v UNet as two shards with an index,
// as save_pretrained does for a large model, and reads it back.
func TestOpenComponentSharded(t *testing.T) {
	t.Parallel()
	src := filepath.Join(fixtures(t), "checkpoints", "sd21v", UNet)
	ref, err := OpenComponent(src, ComponentOptions{Variant: "fp32"})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), ref.Config, 0o644); err != nil {
		t.Fatal(err)
	}
	names := ref.Weights.Names()
	shards := [][]string{names[:len(names)/2], names[len(names)/2:]}
	weightMap := map[string]string{}
	for i, part := range shards {
		file := []string{"diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors"}[i]
		var ts []safetensors.WriteTensor
		for _, n := range part {
			w, _ := ref.Weights.Lookup(n)
			ts = append(ts, safetensors.WriteTensor{Name: n, DType: w.DType, Shape: w.Shape, Fill: func(dst []byte) error { copy(dst, w.Data); return nil }})
			weightMap[n] = file
		}
		if err := safetensors.WriteFile(filepath.Join(dir, file), map[string]string{"format": "pt"}, ts); err != nil {
			t.Fatal(err)
		}
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": ref.Bytes}, "weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors.index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := OpenComponent(dir, ComponentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Files) != 2 || c.Index != filepath.Join(dir, "diffusion_pytorch_model.safetensors.index.json") {
		t.Errorf("files %v, index %q: want both shards and the index", c.Files, c.Index)
	}
	checkFileOffsets(t, map[string]Weights{"sharded": c.Weights})
	if !slices.Equal(c.Weights.Names(), names) || c.Bytes != ref.Bytes {
		t.Fatalf("%d tensors, %d bytes; want %d, %d", len(c.Weights.Names()), c.Bytes, len(names), ref.Bytes)
	}
	for _, n := range names {
		a, _ := ref.Weights.Lookup(n)
		b, _ := c.Weights.Lookup(n)
		if !bytes.Equal(a.Data, b.Data) || !strings.Contains(b.Origin, weightMap[n]) {
			t.Errorf("%s: data or origin (%s) wrong", n, b.Origin)
		}
	}

	// A fp16 sharded variant under save_pretrained's name wins by default.
	w0, _ := ref.Weights.Lookup(names[0])
	half := []safetensors.WriteTensor{}
	hm := map[string]string{}
	for _, n := range names {
		w, _ := ref.Weights.Lookup(n)
		half = append(half, safetensors.WriteTensor{Name: n, DType: safetensors.F16, Shape: w.Shape, Fill: func(dst []byte) error { copy(dst, halfOf(t, w)); return nil }})
		hm[n] = "diffusion_pytorch_model.fp16-00001-of-00001.safetensors"
	}
	if err := safetensors.WriteFile(filepath.Join(dir, hm[names[0]]), nil, half); err != nil {
		t.Fatal(err)
	}
	idx, _ = json.Marshal(map[string]any{"weight_map": hm})
	if err := os.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.safetensors.index.fp16.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := OpenComponent(dir, ComponentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Precision != safetensors.F16 || !strings.HasSuffix(h.Index, ".index.fp16.json") {
		t.Errorf("sharded fp16 variant not preferred: %s, %s", h.Precision, h.Index)
	}
	if hw, _ := h.Weights.Lookup(names[0]); !bytes.Equal(hw.Data, halfOf(t, w0)) {
		t.Errorf("sharded fp16 data wrong")
	}
}

func TestLayoutFamily(t *testing.T) {
	t.Parallel()
	root := filepath.Join(fixtures(t), "checkpoints")
	for dir, want := range map[string]Family{"sd15": SD1, "sd21v": SD2, "sdxl": SDXL} {
		if got, err := LayoutFamily(filepath.Join(root, dir)); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", dir, got, err, want)
		}
	}
	for _, f := range []Family{SD1, SD2, SDXL} {
		dir := t.TempDir()
		if err := WriteBaseLayout(f, dir); err != nil {
			t.Fatal(err)
		}
		if got, err := LayoutFamily(dir); err != nil || got != f {
			t.Errorf("base layout %s: %q, %v", f, got, err)
		}
	}
	if _, err := LayoutFamily(t.TempDir()); err == nil || !strings.Contains(err.Error(), "model_index.json") {
		t.Errorf("no model_index.json: %v", err)
	}
}

func TestChooseWeights(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		files       []string
		variant     string
		file, index string
	}{
		{[]string{"model.safetensors", "model.fp16.safetensors"}, "", "model.fp16.safetensors", ""},
		{[]string{"model.safetensors", "model.fp16.safetensors"}, "fp32", "model.safetensors", ""},
		{[]string{"model.safetensors"}, "", "model.safetensors", ""},
		{[]string{"model.safetensors"}, "fp16", "", ""},
		{[]string{"diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors.index.fp16.json"}, "", "", "diffusion_pytorch_model.safetensors.index.fp16.json"},
		{[]string{"diffusion_pytorch_model.fp16.safetensors.index.json"}, "", "", "diffusion_pytorch_model.fp16.safetensors.index.json"},
		{[]string{"diffusion_pytorch_model.bin", "model.onnx"}, "", "", ""},
	} {
		file, index, ok := ChooseWeights(func(n string) bool { return slices.Contains(c.files, n) }, c.variant)
		if file != c.file || index != c.index || ok != (c.file != "" || c.index != "") {
			t.Errorf("%v %q: %q %q %v; want %q %q", c.files, c.variant, file, index, ok, c.file, c.index)
		}
	}
	if sh, err := ShardNames([]byte(`{"weight_map": {"a": "m-2.safetensors", "b": "m-1.safetensors", "c": "m-1.safetensors"}}`)); err != nil || !slices.Equal(sh, []string{"m-1.safetensors", "m-2.safetensors"}) {
		t.Errorf("ShardNames: %v %v", sh, err)
	}
	if _, err := ShardNames([]byte(`{"weight_map": {"a": "../x.safetensors"}}`)); err == nil {
		t.Error("a shard outside the folder was accepted")
	}
}
