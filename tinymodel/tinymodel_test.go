package tinymodel_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/diffute/diffute/tinymodel"
)

const (
	f32 ort.TensorElementDataType = ort.TensorElementDataTypeFloat
	f16                           = ort.TensorElementDataTypeFloat16
	i32                           = ort.TensorElementDataTypeInt32
	i64                           = ort.TensorElementDataTypeInt64
)

type io struct {
	name  string
	dtype ort.TensorElementDataType
	dims  []int64 // -1 for a dynamic dim
}

type signature struct{ ins, outs []io }

// expected returns the signature of every graph of a model: what real exports of
// the model's architecture have.
func expected(name string, opts tinymodel.WriteOptions) map[string]signature {
	ft := f32
	if opts.FP16 {
		ft = f16
	}
	xl := name != tinymodel.NameSD
	d1, d2, p := int64(tinymodel.TextHidden), int64(tinymodel.TextHidden2), int64(tinymodel.PooledHidden)
	te1 := signature{
		ins:  []io{{"input_ids", i32, []int64{-1, 77}}},
		outs: []io{{"last_hidden_state", ft, []int64{-1, 77, d1}}, {"pooler_output", ft, []int64{-1, d1}}},
	}
	m := map[string]signature{
		"vae_decoder": {ins: []io{{"latent_sample", ft, []int64{-1, 4, -1, -1}}}, outs: []io{{"sample", ft, []int64{-1, 3, -1, -1}}}},
		"vae_encoder": {ins: []io{{"sample", ft, []int64{-1, 3, -1, -1}}}, outs: []io{{"latent_sample", ft, []int64{-1, 4, -1, -1}}}},
	}
	ts := io{"timestep", i64, []int64{1}}
	switch {
	case opts.FP16 && (xl || opts.TimestepFloatScalar):
		ts = io{"timestep", f16, []int64{1}}
	case xl || opts.TimestepFloatScalar:
		ts = io{"timestep", f32, []int64{}}
	}
	if !xl {
		m["text_encoder"] = te1
		m["unet"] = signature{
			ins:  []io{{"sample", ft, []int64{-1, 4, -1, -1}}, ts, {"encoder_hidden_states", ft, []int64{-1, 77, d1}}},
			outs: []io{{"out_sample", ft, []int64{-1, 4, -1, -1}}},
		}
		return m
	}
	for i := 0; i <= 12; i++ {
		te1.outs = append(te1.outs, io{fmt.Sprintf("hidden_states.%d", i), ft, []int64{-1, 77, d1}})
	}
	te2 := signature{
		ins:  []io{{"input_ids", i64, []int64{-1, 77}}},
		outs: []io{{"text_embeds", ft, []int64{-1, p}}, {"last_hidden_state", ft, []int64{-1, 77, d2}}},
	}
	for i := 0; i <= 32; i++ {
		te2.outs = append(te2.outs, io{fmt.Sprintf("hidden_states.%d", i), ft, []int64{-1, 77, d2}})
	}
	m["text_encoder"] = te1
	m["text_encoder_2"] = te2
	m["unet"] = signature{
		ins: []io{{"sample", ft, []int64{-1, 4, -1, -1}}, ts, {"encoder_hidden_states", ft, []int64{-1, 77, d1 + d2}},
			{"text_embeds", ft, []int64{-1, p}}, {"time_ids", ft, []int64{-1, 6}}},
		outs: []io{{"out_sample", ft, []int64{-1, 4, -1, -1}}},
	}
	return m
}

func checkSignature(t *testing.T, path string, got []ort.InputOutputInfo, want []io) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d: %+v", path, len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.DataType != w.dtype || !slices.Equal([]int64(g.Dimensions), w.dims) {
			t.Errorf("%s: value %d is %s %v %v, want %s %v %v", path, i, g.Name, g.DataType, g.Dimensions, w.name, w.dtype, w.dims)
		}
	}
}

// writeModel writes name into a fresh temporary folder and returns it.
func writeModel(t *testing.T, name string, opts tinymodel.WriteOptions) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), filepath.FromSlash(name))
	if err := tinymodel.WriteWith(dir, name, opts); err != nil {
		t.Fatalf("WriteWith(%s): %v", name, err)
	}
	return dir
}

func folderSize(t *testing.T, dir string) (files []string, size int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		size += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files, size
}

func TestLayout(t *testing.T) {
	t.Parallel()
	for _, name := range tinymodel.Names() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := writeModel(t, name, tinymodel.WriteOptions{ONNX: true})
			files, size := folderSize(t, dir)
			t.Logf("%s: %d files, %d bytes", name, len(files), size)
			xl := name != tinymodel.NameSD
			want := []string{"README.md", "model_index.json", "scheduler/scheduler_config.json",
				"text_encoder/config.json", "text_encoder/model.onnx",
				"tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
				"unet/config.json", "unet/model.onnx",
				"vae_decoder/config.json", "vae_decoder/model.onnx", "vae_encoder/config.json", "vae_encoder/model.onnx"}
			if xl {
				want = append(want, "text_encoder_2/config.json", "text_encoder_2/model.onnx",
					"tokenizer_2/merges.txt", "tokenizer_2/special_tokens_map.json", "tokenizer_2/tokenizer_config.json", "tokenizer_2/vocab.json",
					"unet/weights.pb")
			} else {
				want = append(want, "unet/model.onnx_data")
			}
			slices.Sort(want)
			if !slices.Equal(files, want) {
				t.Fatalf("files:\n%v\nwant:\n%v", files, want)
			}
			if size > 1<<20 {
				t.Errorf("%s is %d bytes; tiny models should stay under 1 MiB", name, size)
			}

			var index map[string]any
			readJSON(t, filepath.Join(dir, "model_index.json"), &index)
			wantClass := map[bool]string{false: "OnnxStableDiffusionPipeline", true: "ORTStableDiffusionXLPipeline"}[xl]
			if index["_class_name"] != wantClass {
				t.Errorf("_class_name = %v, want %s", index["_class_name"], wantClass)
			}
			if xl && index["force_zeros_for_empty_prompt"] != true {
				t.Error("SDXL model_index.json lacks force_zeros_for_empty_prompt: true")
			}
			for _, c := range []string{"scheduler", "text_encoder", "tokenizer", "unet", "vae_decoder"} {
				if _, ok := index[c].([]any); !ok {
					t.Errorf("model_index.json has no %s entry", c)
				}
			}

			var sched map[string]any
			readJSON(t, filepath.Join(dir, "scheduler", "scheduler_config.json"), &sched)
			wantSched := map[string][4]any{
				tinymodel.NameSD:        {"PNDMScheduler", "leading", 1.0, "epsilon"},
				tinymodel.NameSDXL:      {"EulerDiscreteScheduler", "leading", 1.0, "epsilon"},
				tinymodel.NameSDXLTurbo: {"EulerAncestralDiscreteScheduler", "trailing", 0.0, "epsilon"},
			}[name]
			got := [4]any{sched["_class_name"], sched["timestep_spacing"], sched["steps_offset"], sched["prediction_type"]}
			if got != wantSched {
				t.Errorf("scheduler = %v, want %v", got, wantSched)
			}
			if sched["beta_schedule"] != "scaled_linear" || sched["beta_start"] != 0.00085 || sched["beta_end"] != 0.012 || sched["num_train_timesteps"] != 1000.0 {
				t.Errorf("scheduler betas = %v %v %v %v", sched["beta_schedule"], sched["beta_start"], sched["beta_end"], sched["num_train_timesteps"])
			}

			readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
			if err != nil || !strings.Contains(string(readme), "It makes noise, not pictures.") {
				t.Errorf("README.md should say the model makes noise (err %v)", err)
			}
			var vae map[string]any
			readJSON(t, filepath.Join(dir, "vae_decoder", "config.json"), &vae)
			if sf, _ := vae["scaling_factor"].(float64); sf <= 0 {
				t.Errorf("vae_decoder/config.json scaling_factor = %v", vae["scaling_factor"])
			}
		})
	}
}

func TestTokenizerFiles(t *testing.T) {
	t.Parallel()
	dir := writeModel(t, tinymodel.NameSDXL, tinymodel.WriteOptions{ONNX: true})
	for tok, pad := range map[string]string{"tokenizer": "<|endoftext|>", "tokenizer_2": "!"} {
		var vocab map[string]int
		readJSON(t, filepath.Join(dir, tok, "vocab.json"), &vocab)
		n := len(vocab)
		if n >= 2000 || n < 512+100+2 {
			t.Errorf("%s: vocabulary has %d tokens, want 512 bytes + at least 100 merges + 2 specials, < 2000", tok, n)
		}
		ids := map[int]string{}
		for s, id := range vocab {
			ids[id] = s
		}
		if len(ids) != n || ids[0] != "!" || ids[93] != "~" || ids[256] != "!</w>" || ids[n-2] != "<|startoftext|>" || ids[n-1] != "<|endoftext|>" {
			t.Errorf("%s: ids 0, 93, 256, n-2, n-1 = %q %q %q %q %q", tok, ids[0], ids[93], ids[256], ids[n-2], ids[n-1])
		}
		// The space byte (0x20) is not printable, so CLIP maps it to U+0120 ("Ġ"),
		// the 33rd non-printable byte, id 188+32.
		if vocab["Ġ"] != 188+32 {
			t.Errorf("%s: id of Ġ = %d, want %d", tok, vocab["Ġ"], 188+32)
		}
		merges, err := os.ReadFile(filepath.Join(dir, tok, "merges.txt"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(merges)), "\n")
		if lines[0] != "#version: 0.2" {
			t.Errorf("%s: merges.txt starts %q", tok, lines[0])
		}
		for i, l := range lines[1:] {
			parts := strings.Split(l, " ")
			if len(parts) != 2 {
				t.Fatalf("%s: merge %d = %q", tok, i, l)
			}
			// Merge i makes token 512+i, as CLIP lays its vocabulary out.
			if id, ok := vocab[parts[0]+parts[1]]; !ok || id != 512+i {
				t.Fatalf("%s: merge %d (%q) makes id %d (present %v), want %d", tok, i, l, id, ok, 512+i)
			}
		}
		if len(lines)-1+512+2 != n {
			t.Errorf("%s: %d merges for %d tokens", tok, len(lines)-1, n)
		}
		var cfg struct {
			Pad       string `json:"pad_token"`
			MaxLength int    `json:"model_max_length"`
		}
		readJSON(t, filepath.Join(dir, tok, "tokenizer_config.json"), &cfg)
		if cfg.Pad != pad || cfg.MaxLength != 77 {
			t.Errorf("%s: pad %q max length %d, want %q 77", tok, cfg.Pad, cfg.MaxLength, pad)
		}
		var special struct {
			Pad string `json:"pad_token"`
		}
		readJSON(t, filepath.Join(dir, tok, "special_tokens_map.json"), &special)
		if special.Pad != pad {
			t.Errorf("%s: special_tokens_map pad %q, want %q", tok, special.Pad, pad)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	for _, name := range tinymodel.Names() {
		a, err := tinymodel.Files(name, tinymodel.WriteOptions{ONNX: true})
		if err != nil {
			t.Fatal(err)
		}
		b, err := tinymodel.Files(name, tinymodel.WriteOptions{ONNX: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != len(b) {
			t.Fatalf("%s: %d then %d files", name, len(a), len(b))
		}
		for p, data := range a {
			if !bytes.Equal(data, b[p]) {
				t.Errorf("%s: %s differs between two writes", name, p)
			}
		}
	}
	// And on disk, through Write.
	dirA := writeModel(t, tinymodel.NameSDXL, tinymodel.WriteOptions{ONNX: true})
	dirB := writeModel(t, tinymodel.NameSDXL, tinymodel.WriteOptions{ONNX: true})
	files, _ := folderSize(t, dirA)
	for _, f := range files {
		x, _ := os.ReadFile(filepath.Join(dirA, f))
		y, err := os.ReadFile(filepath.Join(dirB, f))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs on disk (err %v)", f, err)
		}
	}
	// Distinct models get distinct weights.
	sd, _ := tinymodel.Files(tinymodel.NameSD, tinymodel.WriteOptions{ONNX: true})
	xl, _ := tinymodel.Files(tinymodel.NameSDXL, tinymodel.WriteOptions{ONNX: true})
	if bytes.Equal(sd["vae_decoder/model.onnx"], xl["vae_decoder/model.onnx"]) {
		t.Error("tiny-sd and tiny-sdxl share VAE weights; each model should have its own seed")
	}
}

func TestUnknownName(t *testing.T) {
	t.Parallel()
	if tinymodel.IsTiny("runwayml/stable-diffusion-v1-5") || !tinymodel.IsTiny(tinymodel.NameSDXLTurbo) {
		t.Fatal("IsTiny is wrong")
	}
	dir := filepath.Join(t.TempDir(), "m")
	if err := tinymodel.Write(dir, "diffute/tiny-nope"); err == nil || !strings.Contains(err.Error(), "unknown model") {
		t.Fatalf("Write(unknown) = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Write(unknown) left %s behind (%v)", dir, err)
	}
}

func TestWriteReplacesOnlyTinyFolders(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "tiny")
	if err := tinymodel.Write(dir, tinymodel.NameSD); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Rewriting a tiny folder replaces it wholesale.
	if err := tinymodel.Write(dir, tinymodel.NameSDXL); err != nil {
		t.Fatalf("rewrite: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "extra")); !os.IsNotExist(err) {
		t.Error("rewrite kept a file of the old folder")
	}
	if _, err := os.Stat(filepath.Join(dir, "text_encoder_2", "model.safetensors")); err != nil {
		t.Errorf("rewrite did not write the new model: %v", err)
	}
	// A folder that is not a tiny model is left alone.
	other := filepath.Join(root, "mine")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tinymodel.Write(other, tinymodel.NameSD); err == nil {
		t.Fatal("Write replaced a folder that is not a tiny model")
	}
	if b, err := os.ReadFile(filepath.Join(other, "notes.txt")); err != nil || string(b) != "keep" {
		t.Fatalf("notes.txt = %q, %v", b, err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary folder %s left behind", e.Name())
		}
	}
}

func TestEnsureConcurrent(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "diffute", "tiny-sd")
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			got, err := tinymodel.Ensure(dir, tinymodel.NameSD)
			if err == nil && got != dir {
				err = fmt.Errorf("Ensure returned %s, want %s", got, dir)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")); err != nil {
		t.Fatalf("Ensure did not write the model: %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("parent holds %v, want only tiny-sd", names)
	}
	// A present folder is returned as is, not rewritten.
	marker := filepath.Join(dir, "kept")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tinymodel.Ensure(dir, tinymodel.NameSD); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Error("Ensure rewrote a complete folder")
	}
}
