package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/diffute/diffute/safetensors"
)

// TestOpenPipelineSameFromEverySource opens each fixture pipeline as a
// diffusers folder and as its single file: same family, same components, the
// same tensor names and shapes.
func TestOpenPipelineSameFromEverySource(t *testing.T) {
	t.Parallel()
	root := filepath.Join(fixtures(t), "checkpoints")
	for name, family := range map[string]Family{"sd15": SD1, "sdxl": SDXL} {
		folder, err := OpenPipeline(filepath.Join(root, name), PipelineOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer folder.Close()
		single, err := OpenPipeline(filepath.Join(root, name+".safetensors"), PipelineOptions{LayoutDir: filepath.Join(root, name)})
		if err != nil {
			t.Fatal(err)
		}
		defer single.Close()
		if folder.Family != family || single.Family != family || folder.Format != FormatDiffusers || single.Format != FormatSingleFile {
			t.Errorf("%s: %s/%s and %s/%s", name, folder.Family, folder.Format, single.Family, single.Format)
		}
		if len(folder.Components) != len(single.Components) {
			t.Fatalf("%s: %d vs %d components", name, len(folder.Components), len(single.Components))
		}
		for comp, fw := range folder.Components {
			sw := single.Components[comp]
			if sw == nil || !slices.Equal(fw.Names(), sw.Names()) {
				t.Errorf("%s %s: names differ", name, comp)
				continue
			}
			for _, n := range fw.Names() {
				a, _ := fw.Lookup(n)
				b, _ := sw.Lookup(n)
				if !slices.Equal(a.Shape, b.Shape) {
					t.Errorf("%s %s %s: %v vs %v", name, comp, n, a.Shape, b.Shape)
				}
			}
		}
		for _, f := range []string{"model_index.json", "unet/config.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json"} {
			a, err1 := fs.ReadFile(folder.Layout, f)
			b, err2 := fs.ReadFile(single.Layout, f)
			if err1 != nil || err2 != nil || string(a) != string(b) {
				t.Errorf("%s: layout file %s differs (%v, %v)", name, f, err1, err2)
			}
		}
	}
	// Without LayoutDir a single file takes the published base layout, which
	// does not describe the tiny checkpoint: refused, naming the key.
	_, err := OpenPipeline(filepath.Join(root, "sd15.safetensors"), PipelineOptions{})
	oneLine(t, err, "sd15.safetensors", "conv_in.weight", "block_out_channels[0] 320")
}

// sd1Shaped is a key set with SD 1.5's structural shapes where the checks
// look (conv_in, the token embedding, 12 text encoder layers); inChannels and
// layers vary it.
func sd1Shaped(inChannels int64, layers int) []safetensors.WriteTensor {
	ts := []safetensors.WriteTensor{
		{Name: "model.diffusion_model.input_blocks.0.0.weight", DType: safetensors.F16, Shape: []int64{320, inChannels, 3, 3}},
		{Name: "model.diffusion_model.input_blocks.1.0.in_layers.0.weight", DType: safetensors.F16, Shape: []int64{320}},
		{Name: "model.diffusion_model.output_blocks.0.0.in_layers.0.weight", DType: safetensors.F16, Shape: []int64{640}},
		{Name: "model.diffusion_model.output_blocks.1.0.in_layers.0.weight", DType: safetensors.F16, Shape: []int64{640}},
		{Name: "model.diffusion_model.out.2.weight", DType: safetensors.F16, Shape: []int64{4, 320, 3, 3}},
		{Name: "first_stage_model.decoder.conv_in.weight", DType: safetensors.F16, Shape: []int64{512, 4, 3, 3}},
		{Name: "first_stage_model.decoder.up.0.block.0.conv1.weight", DType: safetensors.F16, Shape: []int64{1}},
		{Name: "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight", DType: safetensors.F16, Shape: []int64{49408, 768}},
	}
	for l := range layers {
		ts = append(ts, safetensors.WriteTensor{Name: fmt.Sprintf("cond_stage_model.transformer.text_model.encoder.layers.%d.layer_norm1.weight", l), DType: safetensors.F16, Shape: []int64{768}})
	}
	return ts
}

func TestOpenPipelineChecksShapesAgainstLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, ts []safetensors.WriteTensor) string {
		p := filepath.Join(dir, name)
		if err := safetensors.WriteFile(p, nil, ts); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, err := OpenPipeline(write("sd15-shaped.safetensors", sd1Shaped(4, 12)), PipelineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if b, err := fs.ReadFile(p.Layout, "unet/config.json"); err != nil || !strings.Contains(string(b), `"cross_attention_dim": 768`) {
		t.Errorf("base layout not used: %v", err)
	}
	_, err = OpenPipeline(write("inpaint.safetensors", sd1Shaped(9, 12)), PipelineOptions{})
	oneLine(t, err, "inpaint.safetensors", "conv_in.weight", "in_channels 4", "inpainting")
	_, err = OpenPipeline(write("short.safetensors", sd1Shaped(4, 11)), PipelineOptions{})
	oneLine(t, err, "short.safetensors", "11 layers", "num_hidden_layers 12")
}

func TestOpenPipelineBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := OpenPipeline(dir, PipelineOptions{})
	oneLine(t, err, dir, "model_index.json")

	onnx := filepath.Join(dir, "onnx")
	os.MkdirAll(filepath.Join(onnx, "unet"), 0o755)
	os.WriteFile(filepath.Join(onnx, "model_index.json"), []byte(`{"unet": ["optimum", "ORTModel"]}`), 0o644)
	os.WriteFile(filepath.Join(onnx, "unet", "model.onnx"), []byte("x"), 0o644)
	_, err = OpenPipeline(onnx, PipelineOptions{})
	if !errors.Is(err, ErrNoSafetensors) {
		t.Errorf("ONNX folder: %v, want ErrNoSafetensors", err)
	}
	oneLine(t, err, onnx)

	_, err = OpenPipeline(filepath.Join(dir, "absent.safetensors"), PipelineOptions{})
	oneLine(t, err, "absent.safetensors")
}
