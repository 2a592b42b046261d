package checkpoint

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffute/diffute/safetensors"
)

// TestSD2SingleFile builds an SD 2.x single file (there is no converted one
// among the fixtures): the UNet and VAE of sd15.safetensors and, as
// cond_stage_model.model.*, the sd21v text encoder written in OpenCLIP's layout
// (q/k/v concatenated) plus one more resblock and a text_projection, which
// diffusers drops for SD 2.x (it runs the penultimate layer).
func TestSD2SingleFile(t *testing.T) {
	t.Parallel()
	root := filepath.Join(fixtures(t), "checkpoints")
	sd15, err := safetensors.Open(filepath.Join(root, "sd15.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer sd15.Close()
	te, err := OpenComponent(filepath.Join(root, "sd21v", TextEncoder), ComponentOptions{Variant: "fp32"})
	if err != nil {
		t.Fatal(err)
	}
	defer te.Close()

	var ts []safetensors.WriteTensor
	add := func(name string, dtype safetensors.DType, shape []int64, data ...[]byte) {
		ts = append(ts, safetensors.WriteTensor{Name: name, DType: dtype, Shape: shape, Fill: func(dst []byte) error {
			off := 0
			for _, d := range data {
				off += copy(dst[off:], d)
			}
			return nil
		}})
	}
	for _, n := range sd15.Names() {
		if strings.HasPrefix(n, ldmUNet) || strings.HasPrefix(n, ldmVAE) {
			tt, _ := sd15.Tensor(n)
			add(n, tt.DType, tt.Shape, sd15.Bytes(tt))
		}
	}
	get := func(n string) Weight {
		w, ok := te.Weights.Lookup(n)
		if !ok {
			t.Fatalf("sd21v text encoder lacks %s", n)
		}
		return w
	}
	const p = "cond_stage_model.model."
	tm := "text_model."
	w := get(tm + "embeddings.token_embedding.weight")
	add(p+"token_embedding.weight", w.DType, w.Shape, w.Data)
	w = get(tm + "embeddings.position_embedding.weight")
	add(p+"positional_embedding", w.DType, w.Shape, w.Data)
	for _, s := range []string{"weight", "bias"} {
		w = get(tm + "final_layer_norm." + s)
		add(p+"ln_final."+s, w.DType, w.Shape, w.Data)
	}
	layers := 3
	for l := 0; l <= layers; l++ { // layer 3 is the extra one, a copy of layer 0
		src := l % layers
		lp := fmt.Sprintf("%stransformer.resblocks.%d.", p, l)
		hp := fmt.Sprintf("%sencoder.layers.%d.", tm, src)
		for _, s := range []string{"weight", "bias"} {
			q, k, v := get(hp+"self_attn.q_proj."+s), get(hp+"self_attn.k_proj."+s), get(hp+"self_attn.v_proj."+s)
			shape := append([]int64{3 * q.Shape[0]}, q.Shape[1:]...)
			add(lp+"attn.in_proj_"+s, q.DType, shape, q.Data, k.Data, v.Data)
			for ldm, hf := range map[string]string{"attn.out_proj.": "self_attn.out_proj.", "ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.", "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2."} {
				w := get(hp + hf + s)
				add(lp+ldm+s, w.DType, w.Shape, w.Data)
			}
		}
	}
	add(p+"text_projection", safetensors.F32, []int64{4, 8}, make([]byte, 4*4*8))
	add(p+"logit_scale", safetensors.F32, []int64{}, make([]byte, 4))
	path := filepath.Join(t.TempDir(), "sd21.safetensors")
	if err := safetensors.WriteFile(path, nil, ts); err != nil {
		t.Fatal(err)
	}

	sf, err := OpenSingleFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	if sf.Family != SD2 {
		t.Fatalf("family %s, want sd2", sf.Family)
	}
	got := sf.Components[TextEncoder]
	for _, n := range te.Weights.Names() {
		g, ok := got.Lookup(n)
		r, _ := te.Weights.Lookup(n)
		if !ok || !bytes.Equal(g.Data, r.Data) || fmt.Sprint(g.Shape) != fmt.Sprint(r.Shape) {
			t.Errorf("%s: missing or different (ok=%v, shape %v vs %v)", n, ok, g.Shape, r.Shape)
		}
	}
	if len(got.Names()) != len(te.Weights.Names()) {
		t.Errorf("%d mapped text encoder tensors, want %d (last layer and text_projection dropped)", len(got.Names()), len(te.Weights.Names()))
	}
	if _, ok := sf.Components[TextEncoder2]; ok {
		t.Error("an SD 2.x checkpoint has no text_encoder_2")
	}
}

// TestUNetMapperLayout checks block arithmetic on the sd21v shape (one resnet
// per block; CrossAttnDown, Down / Up, CrossAttnUp), which no fixture single
// file has.
func TestUNetMapperLayout(t *testing.T) {
	t.Parallel()
	keys := []string{
		"input_blocks.0.0.weight", "input_blocks.1.0.in_layers.0.weight", "input_blocks.1.1.proj_in.weight",
		"input_blocks.2.0.op.weight", "input_blocks.3.0.skip_connection.weight",
		"output_blocks.0.0.in_layers.2.weight", "output_blocks.1.0.emb_layers.1.bias", "output_blocks.1.1.conv.weight",
		"output_blocks.2.0.out_layers.3.weight", "output_blocks.2.1.transformer_blocks.0.attn2.to_k.weight", "output_blocks.3.1.norm.bias",
	}
	m, err := newUNetMapper(keys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"conv_in.weight", "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.attentions.0.proj_in.weight",
		"down_blocks.0.downsamplers.0.conv.weight", "down_blocks.1.resnets.0.conv_shortcut.weight",
		"up_blocks.0.resnets.0.conv1.weight", "up_blocks.0.resnets.1.time_emb_proj.bias", "up_blocks.0.upsamplers.0.conv.weight",
		"up_blocks.1.resnets.0.conv2.weight", "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", "up_blocks.1.attentions.1.norm.bias",
	}
	for i, k := range keys {
		out, ok := m.mapKey(k)
		if !ok || len(out) != 1 || out[0].name != want[i] {
			t.Errorf("%s → %v (ok=%v), want %s", k, out, ok, want[i])
		}
	}
	if _, err := newUNetMapper([]string{"input_blocks.0.0.weight", "input_blocks.3.0.op.weight", "output_blocks.1.0.x"}); err == nil {
		t.Error("an inconsistent block layout was accepted")
	}
}
