package checkpoint

import (
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffute/diffute/safetensors"
)

// FuzzSingleFileKeys feeds key sets and shapes to the ldm mapping: whatever
// the keys, opening is an error or a mapping, never a panic.
func FuzzSingleFileKeys(f *testing.F) {
	for _, seed := range []string{
		"model.diffusion_model.input_blocks.0.0.weight\nfirst_stage_model.decoder.up.0.block.0.conv1.weight\ncond_stage_model.transformer.text_model.final_layer_norm.weight",
		"model.diffusion_model.input_blocks.3.0.op.weight\nmodel.diffusion_model.output_blocks.5.2.conv.weight\nfirst_stage_model.decoder.mid.attn_1.q.weight\ncond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight\ncond_stage_model.model.token_embedding.weight",
		"model.diffusion_model.input_blocks.1.0.in_layers.0.weight\nconditioner.embedders.0.transformer.text_model.x\nconditioner.embedders.1.model.text_projection\nconditioner.embedders.1.model.token_embedding.weight\nfirst_stage_model.decoder.up.9.upsample.conv.weight",
		"model.diffusion_model.input_blocks.-1.0.x\nmodel.diffusion_model.output_blocks.99999999999999999999.0.x",
	} {
		f.Add(seed, uint8(3), uint8(2))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, keys string, d0, d1 uint8) {
		seen := map[string]bool{}
		var ts []safetensors.WriteTensor
		for i, k := range strings.Split(keys, "\n") {
			if k == "" || seen[k] || k == "__metadata__" || len(ts) > 64 {
				continue
			}
			seen[k] = true
			shape := []int64{int64(d0%8) + 1, int64(d1%8) + 1}
			switch i % 3 {
			case 1:
				shape = []int64{int64(d0 % 7)}
			case 2:
				shape = append(shape, 1, 1)
			}
			ts = append(ts, safetensors.WriteTensor{Name: k, DType: safetensors.F16, Shape: shape, Fill: func(b []byte) error {
				for j := 0; j+2 <= len(b); j += 2 {
					binary.LittleEndian.PutUint16(b[j:], uint16(j))
				}
				return nil
			}})
		}
		p := filepath.Join(dir, "f.safetensors")
		if err := safetensors.WriteFile(p, nil, ts); err != nil {
			return
		}
		s, err := OpenSingleFile(p)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			return
		}
		for _, w := range s.Components {
			for _, n := range w.Names() {
				wt, _ := w.Lookup(n)
				if int64(len(wt.Data)) != wt.NumElements()*2 {
					t.Errorf("%s: %d bytes for shape %v", n, len(wt.Data), wt.Shape)
				}
			}
		}
		s.Close()
	})
}
