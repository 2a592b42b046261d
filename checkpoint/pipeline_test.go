package checkpoint

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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
	// Without LayoutDir a single file takes the published base layout.
	p, err := OpenPipeline(filepath.Join(root, "sd15.safetensors"), PipelineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if b, err := fs.ReadFile(p.Layout, "unet/config.json"); err != nil || !strings.Contains(string(b), `"cross_attention_dim": 768`) {
		t.Errorf("base layout not used: %v", err)
	}
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
