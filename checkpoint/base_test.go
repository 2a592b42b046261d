package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestBaseLayout(t *testing.T) {
	t.Parallel()
	fx := filepath.Join(fixtures(t), "checkpoints")
	for _, c := range []struct {
		family  Family
		fixture string // the tiny pipeline of the same family, for key sets
		comps   []string
		pads    map[string]string
		sample  int
	}{
		{SD1, "sd15", []string{"text_encoder", "unet", "vae"}, map[string]string{"tokenizer": "<|endoftext|>"}, 64},
		{SD2, "sd21v", []string{"text_encoder", "unet", "vae"}, map[string]string{"tokenizer": "!"}, 96},
		{SDXL, "sdxl", []string{"text_encoder", "text_encoder_2", "unet", "vae"}, map[string]string{"tokenizer": "<|endoftext|>", "tokenizer_2": "!"}, 128},
	} {
		t.Run(string(c.family), func(t *testing.T) {
			t.Parallel()
			layout := BaseLayout(c.family)
			var files []string
			if err := fs.WalkDir(layout, ".", func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, p)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			want := []string{"model_index.json", "scheduler/scheduler_config.json"}
			for _, comp := range c.comps {
				want = append(want, comp+"/config.json")
			}
			for tok := range c.pads {
				for _, f := range []string{"merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"} {
					want = append(want, tok+"/"+f)
				}
			}
			slices.Sort(want)
			slices.Sort(files)
			if !slices.Equal(files, want) {
				t.Fatalf("files %v\nwant %v", files, want)
			}
			// Same key sets as what diffusers writes (the fixtures), and the
			// published scheduler and pipeline files verbatim.
			for _, f := range files {
				got, err := fs.ReadFile(layout, f)
				if err != nil {
					t.Fatal(err)
				}
				ref, err := os.ReadFile(filepath.Join(fx, c.fixture, f))
				if err != nil {
					t.Fatal(err)
				}
				if filepath.Ext(f) != ".json" {
					if string(got) != string(ref) {
						t.Errorf("%s differs from the fixture's", f)
					}
					continue
				}
				var g, r map[string]any
				if err := json.Unmarshal(got, &g); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				json.Unmarshal(ref, &r)
				if !slices.Equal(slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(r))) {
					t.Errorf("%s: keys %v, fixture's %v", f, slices.Sorted(maps.Keys(g)), slices.Sorted(maps.Keys(r)))
				}
				if f == "model_index.json" || f == "scheduler/scheduler_config.json" || filepath.Dir(f) == "tokenizer" || filepath.Dir(f) == "tokenizer_2" {
					if string(got) != string(ref) && !(string(got) == string(ref)+"\n") {
						t.Errorf("%s is not the published file", f)
					}
				}
			}
			for tok, pad := range c.pads {
				var cfg struct {
					PadToken string `json:"pad_token"`
				}
				b, _ := fs.ReadFile(layout, tok+"/tokenizer_config.json")
				json.Unmarshal(b, &cfg)
				if cfg.PadToken != pad {
					t.Errorf("%s pad %q, want %q", tok, cfg.PadToken, pad)
				}
				v, _ := fs.ReadFile(layout, tok+"/vocab.json")
				if sum := sha256.Sum256(v); hex.EncodeToString(sum[:])[:8] != "3f0c4f7d" {
					t.Errorf("%s/vocab.json is not the CLIP vocabulary", tok)
				}
			}
			var unet struct {
				SampleSize int `json:"sample_size"`
			}
			b, _ := fs.ReadFile(layout, "unet/config.json")
			json.Unmarshal(b, &unet)
			if unet.SampleSize != c.sample {
				t.Errorf("unet sample_size %d, want %d", unet.SampleSize, c.sample)
			}

			dir := t.TempDir()
			if err := WriteBaseLayout(c.family, dir); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				a, _ := fs.ReadFile(layout, f)
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil || string(a) != string(b) {
					t.Errorf("WriteBaseLayout: %s not written as is (%v)", f, err)
				}
			}
		})
	}
	if err := WriteBaseLayout("sd3", t.TempDir()); err == nil {
		t.Error("an unknown family wrote a layout")
	}
}
