package tinymodel_test

import (
	"bytes"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/diffute/diffute/safetensors"
	"github.com/diffute/diffute/tinymodel"
)

// TestDiffusersLayout checks the default tiny models are diffusers folders whose
// safetensors hold exactly the weights their configs' architectures need, with
// the same bytes every time.
func TestDiffusersLayout(t *testing.T) {
	t.Parallel()
	for _, name := range tinymodel.Names() {
		files, err := tinymodel.Files(name, tinymodel.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		again, _ := tinymodel.Files(name, tinymodel.WriteOptions{})
		components := []string{"text_encoder", "unet", "vae"}
		if name != tinymodel.NameSD {
			components = append(components, "text_encoder_2")
		}
		for _, c := range components {
			cfg := files[c+"/config.json"]
			wpath := path.Join(c, tinymodel.WeightsFile(c, safetensors.F32))
			raw, ok := files[wpath]
			if cfg == nil || !ok {
				t.Fatalf("%s: %s/config.json or %s missing", name, c, wpath)
			}
			if !bytes.Equal(raw, again[wpath]) {
				t.Errorf("%s: %s differs between two writes", name, wpath)
			}
			f, err := safetensors.Parse(wpath, raw)
			if err != nil {
				t.Fatal(err)
			}
			params, err := tinymodel.ComponentParams(c, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, p := range params {
				want = append(want, p.Name)
				ti, ok := f.Tensor(p.Name)
				if !ok || !slices.Equal(ti.Shape, p.Shape) {
					t.Errorf("%s: %s: %s = %+v, want shape %v", name, c, p.Name, ti, p.Shape)
				}
			}
			slices.Sort(want)
			if !slices.Equal(f.Names(), want) {
				t.Errorf("%s: %s holds %d tensors, the architecture needs %d", name, c, len(f.Names()), len(want))
			}
		}
		if !strings.Contains(string(files["model_index.json"]), "UNet2DConditionModel") {
			t.Errorf("%s: model_index.json is not a diffusers pipeline: %s", name, files["model_index.json"])
		}
		for p := range files {
			if strings.HasSuffix(p, ".onnx") {
				t.Errorf("%s: %s in a diffusers-layout model", name, p)
			}
		}
	}
}
