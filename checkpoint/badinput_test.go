package checkpoint

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffute/diffute/safetensors"
)

// writeST writes a safetensors file of zero-filled tensors.
func writeST(t *testing.T, path string, tensors map[string]safetensors.WriteTensor) string {
	t.Helper()
	var ts []safetensors.WriteTensor
	for name, w := range tensors {
		w.Name = name
		ts = append(ts, w)
	}
	if err := safetensors.WriteFile(path, nil, ts); err != nil {
		t.Fatal(err)
	}
	return path
}

func f16(shape ...int64) safetensors.WriteTensor {
	return safetensors.WriteTensor{DType: safetensors.F16, Shape: shape}
}

// minimalSD1 is the smallest key set that is an SD 1.x checkpoint.
func minimalSD1() map[string]safetensors.WriteTensor {
	return map[string]safetensors.WriteTensor{
		"model.diffusion_model.input_blocks.0.0.weight":                   f16(4, 4, 3, 3),
		"model.diffusion_model.input_blocks.1.0.in_layers.0.weight":       f16(4),
		"model.diffusion_model.output_blocks.0.0.in_layers.0.weight":      f16(8),
		"model.diffusion_model.output_blocks.1.0.in_layers.0.weight":      f16(8),
		"first_stage_model.decoder.up.0.block.0.conv1.weight":             f16(4, 4, 3, 3),
		"cond_stage_model.transformer.text_model.final_layer_norm.weight": f16(4),
	}
}

// oneLine checks err is a single line naming every want.
func oneLine(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one naming %q", want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not name %q", msg, w)
		}
	}
}

func TestSingleFileBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	t.Run("truncated", func(t *testing.T) {
		good := writeST(t, filepath.Join(dir, "good.safetensors"), minimalSD1())
		b, _ := os.ReadFile(good)
		for _, n := range []int{0, 5, 8 + 10, len(b) - 1} {
			p := filepath.Join(dir, "trunc.safetensors")
			os.WriteFile(p, b[:n], 0o644)
			_, err := OpenSingleFile(p)
			oneLine(t, err, p)
		}
	})
	t.Run("corrupt header length", func(t *testing.T) {
		p := filepath.Join(dir, "huge.safetensors")
		b := make([]byte, 16)
		binary.LittleEndian.PutUint64(b, 1<<40)
		os.WriteFile(p, b, 0o644)
		_, err := OpenSingleFile(p)
		oneLine(t, err, p, "header length")
	})
	t.Run("not a file", func(t *testing.T) {
		_, err := OpenSingleFile(filepath.Join(dir, "absent.safetensors"))
		oneLine(t, err, "absent.safetensors")
	})
	t.Run("unknown family", func(t *testing.T) {
		p := writeST(t, filepath.Join(dir, "lora.safetensors"), map[string]safetensors.WriteTensor{
			"lora_unet_down_blocks_0.alpha":             f16(),
			"lora_te_text_model_encoder.lora_up.weight": f16(4, 1),
		})
		_, err := OpenSingleFile(p)
		oneLine(t, err, p, "not an SD 1.x, SD 2.x or SDXL base checkpoint", "lora_te_text_model_encoder.lora_up.*")
	})
	t.Run("sdxl refiner", func(t *testing.T) {
		p := writeST(t, filepath.Join(dir, "refiner.safetensors"), map[string]safetensors.WriteTensor{
			"model.diffusion_model.input_blocks.0.0.weight":                     f16(4, 4, 3, 3),
			"conditioner.embedders.0.model.ln_final.weight":                     f16(4),
			"conditioner.embedders.0.model.transformer.resblocks.0.ln_1.weight": f16(4),
		})
		_, err := OpenSingleFile(p)
		oneLine(t, err, p, "SDXL refiner")
	})
	t.Run("integer weight", func(t *testing.T) {
		ts := minimalSD1()
		ts["model.diffusion_model.input_blocks.1.0.in_layers.0.weight"] = safetensors.WriteTensor{DType: safetensors.I32, Shape: []int64{4}}
		p := writeST(t, filepath.Join(dir, "int.safetensors"), ts)
		_, err := OpenSingleFile(p)
		oneLine(t, err, p, "model.diffusion_model.input_blocks.1.0.in_layers.0.weight", "I32")
	})
	t.Run("unknown key in a component", func(t *testing.T) {
		ts := minimalSD1()
		ts["model.diffusion_model.input_blocks.1.0.lora_down.weight"] = f16(4)
		p := writeST(t, filepath.Join(dir, "extra.safetensors"), ts)
		_, err := OpenSingleFile(p)
		oneLine(t, err, p, "model.diffusion_model.input_blocks.1.0.lora_down.weight")
	})
	t.Run("missing component", func(t *testing.T) {
		ts := minimalSD1()
		delete(ts, "first_stage_model.decoder.up.0.block.0.conv1.weight")
		p := writeST(t, filepath.Join(dir, "novae.safetensors"), ts)
		_, err := OpenSingleFile(p)
		oneLine(t, err, p, "vae", "first_stage_model.")
	})
	t.Run("ignored keys", func(t *testing.T) {
		ts := minimalSD1()
		ts["model_ema.num_updates"] = safetensors.WriteTensor{DType: safetensors.I32, Shape: []int64{}}
		ts["alphas_cumprod"] = safetensors.WriteTensor{DType: safetensors.F32, Shape: []int64{1000}}
		ts["first_stage_model.loss.logvar"] = safetensors.WriteTensor{DType: safetensors.F32, Shape: []int64{}}
		ts["cond_stage_model.transformer.text_model.embeddings.position_ids"] = safetensors.WriteTensor{DType: safetensors.I64, Shape: []int64{1, 77}}
		p := writeST(t, filepath.Join(dir, "ema.safetensors"), ts)
		s, err := OpenSingleFile(p)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Family != SD1 || len(s.Components[TextEncoder].Names()) != 1 {
			t.Errorf("family %s, text encoder %v", s.Family, s.Components[TextEncoder].Names())
		}
		if n := s.Components[VAE].Names(); len(n) != 1 || n[0] != "decoder.up_blocks.0.resnets.0.conv1.weight" {
			t.Errorf("vae %v, want only the decoder conv", n)
		}
	})
}

func TestComponentBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := []byte(`{"_class_name": "AutoencoderKL"}`)

	_, err := OpenComponent(filepath.Join(dir, "vae"), ComponentOptions{})
	oneLine(t, err, filepath.Join(dir, "vae"), "does not exist")

	noConfig := filepath.Join(dir, "noconfig")
	os.Mkdir(noConfig, 0o755)
	writeST(t, filepath.Join(noConfig, "diffusion_pytorch_model.safetensors"), map[string]safetensors.WriteTensor{"a": f16(1)})
	_, err = OpenComponent(noConfig, ComponentOptions{})
	oneLine(t, err, noConfig, "config.json")

	noWeights := filepath.Join(dir, "noweights")
	os.Mkdir(noWeights, 0o755)
	os.WriteFile(filepath.Join(noWeights, "config.json"), cfg, 0o644)
	_, err = OpenComponent(noWeights, ComponentOptions{})
	oneLine(t, err, noWeights, "no weights")

	trunc := filepath.Join(dir, "trunc")
	os.Mkdir(trunc, 0o755)
	os.WriteFile(filepath.Join(trunc, "config.json"), cfg, 0o644)
	p := writeST(t, filepath.Join(trunc, "diffusion_pytorch_model.safetensors"), map[string]safetensors.WriteTensor{"conv_in.weight": f16(4, 4, 3, 3)})
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-2], 0o644)
	_, err = OpenComponent(trunc, ComponentOptions{})
	oneLine(t, err, p)

	ints := filepath.Join(dir, "ints")
	os.Mkdir(ints, 0o755)
	os.WriteFile(filepath.Join(ints, "config.json"), cfg, 0o644)
	p = writeST(t, filepath.Join(ints, "diffusion_pytorch_model.safetensors"), map[string]safetensors.WriteTensor{
		"conv_in.weight": {DType: safetensors.I8, Shape: []int64{4}},
	})
	_, err = OpenComponent(ints, ComponentOptions{})
	oneLine(t, err, p, "conv_in.weight", "I8")

	badIndex := filepath.Join(dir, "badindex")
	os.Mkdir(badIndex, 0o755)
	os.WriteFile(filepath.Join(badIndex, "config.json"), cfg, 0o644)
	os.WriteFile(filepath.Join(badIndex, "model.safetensors.index.json"), []byte(`{"weight_map": {"a": "model-00001-of-00002.safetensors"}}`), 0o644)
	_, err = OpenComponent(badIndex, ComponentOptions{})
	oneLine(t, err, "model-00001-of-00002.safetensors")
}

func TestSingleFilePredictionType(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, c := range []struct {
		meta map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"modelspec.prediction_type": "v"}, "v_prediction"},
		{map[string]string{"modelspec.prediction_type": "epsilon"}, "epsilon"},
		{map[string]string{"ss_v_parameterization": "False"}, "epsilon"},
		{map[string]string{"ss_v_parameterization": "True", "format": "pt"}, "v_prediction"},
	} {
		var ts []safetensors.WriteTensor
		for name, w := range minimalSD1() {
			w.Name = name
			ts = append(ts, w)
		}
		p := filepath.Join(dir, fmt.Sprintf("m%d.safetensors", i))
		if err := safetensors.WriteFile(p, c.meta, ts); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSingleFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if s.PredictionType != c.want {
			t.Errorf("%v: prediction type %q, want %q", c.meta, s.PredictionType, c.want)
		}
		s.Close()
	}
}
