package tinymodel_test

import (
	"fmt"
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/diffute/diffute/tinymodel"
)

// variants are the model variants every graph test covers.
var variants = []struct {
	name string
	opts tinymodel.WriteOptions
}{
	{tinymodel.NameSD, tinymodel.WriteOptions{ONNX: true}},
	{tinymodel.NameSDXL, tinymodel.WriteOptions{ONNX: true}},
	{tinymodel.NameSDXLTurbo, tinymodel.WriteOptions{ONNX: true}},
	{tinymodel.NameSD, tinymodel.WriteOptions{ONNX: true, FP16: true}},
	{tinymodel.NameSDXL, tinymodel.WriteOptions{ONNX: true, FP16: true}},
	{tinymodel.NameSD, tinymodel.WriteOptions{ONNX: true, TimestepFloatScalar: true}},
	{tinymodel.NameSD, tinymodel.WriteOptions{ONNX: true, FP16: true, TimestepFloatScalar: true}},
}

func variantName(name string, o tinymodel.WriteOptions) string {
	s := name
	if o.FP16 {
		s += "+fp16"
	}
	if o.TimestepFloatScalar {
		s += "+float-timestep"
	}
	return s
}

func TestSignatures(t *testing.T) {
	t.Parallel()
	requireORT(t)
	for _, v := range variants {
		t.Run(variantName(v.name, v.opts), func(t *testing.T) {
			t.Parallel()
			dir := writeModel(t, v.name, v.opts)
			for comp, sig := range expected(v.name, v.opts) {
				path := filepath.Join(dir, comp, "model.onnx")
				ins, outs, err := ort.GetInputOutputInfo(path)
				if err != nil {
					t.Fatalf("%s: %v", comp, err)
				}
				checkSignature(t, comp+" inputs", ins, sig.ins)
				checkSignature(t, comp+" outputs", outs, sig.outs)
			}
		})
	}
}

func TestTextEncodersDependOnEveryToken(t *testing.T) {
	t.Parallel()
	requireORT(t)
	for _, v := range variants[:5] {
		t.Run(variantName(v.name, v.opts), func(t *testing.T) {
			t.Parallel()
			dir := writeModel(t, v.name, v.opts)
			var vocab map[string]int
			readJSON(t, filepath.Join(dir, "tokenizer", "vocab.json"), &vocab)
			n := len(vocab)
			encoders := map[string]int64{"text_encoder": tinymodel.TextHidden}
			if v.name != tinymodel.NameSD {
				encoders["text_encoder_2"] = tinymodel.TextHidden2
			}
			for comp, d := range encoders {
				shapes := map[string][]int64{
					"last_hidden_state": {2, 77, d},
					"pooler_output":     {2, d},
					"text_embeds":       {2, tinymodel.PooledHidden},
				}
				for i := 0; i <= 32; i++ {
					shapes[fmt.Sprintf("hidden_states.%d", i)] = []int64{2, 77, d}
				}
				c := loadComponent(t, filepath.Join(dir, comp, "model.onnx"), shapes)
				pad := float64(n - 1)
				if comp == "text_encoder_2" {
					pad = 0 // "!"
				}
				prompt := func(ids ...float64) []float64 {
					out := []float64{float64(n - 2)}
					out = append(out, ids...)
					out = append(out, float64(n-1))
					for len(out) < 77 {
						out = append(out, pad)
					}
					return out
				}
				// Two rows: a prompt and an empty prompt, so batch rows are
				// checked to be independent too.
				base := append(prompt(100, 200, 300), prompt()...)
				feedIDs := feed{name: "input_ids", shape: []int64{2, 77}, data: base}
				ref := c.run(t, feedIDs)
				pooled := "pooler_output"
				if comp == "text_encoder_2" {
					pooled = "text_embeds"
				}
				for name, vals := range ref {
					if len(vals) == 0 || !differ(vals, make([]float32, len(vals)), 0, 0) {
						t.Errorf("%s: %s is all zero", comp, name)
					}
				}
				cases := map[string][]float64{
					"a token changed":  append(prompt(100, 201, 300), prompt()...),
					"tokens reordered": append(prompt(300, 200, 100), prompt()...),
				}
				for what, ids := range cases {
					got := c.run(t, feed{name: "input_ids", shape: []int64{2, 77}, data: ids})
					row := int(d) * 77
					// Position 0 holds the same start token: only mixing across
					// tokens can move it.
					if !differ(got["last_hidden_state"], ref["last_hidden_state"], 0, int(d)) {
						t.Errorf("%s: %s leaves last_hidden_state at position 0 unchanged", comp, what)
					}
					if !differ(got[pooled], ref[pooled], 0, len(ref[pooled])/2) {
						t.Errorf("%s: %s leaves %s unchanged", comp, what, pooled)
					}
					if differ(got["last_hidden_state"], ref["last_hidden_state"], row, 0) {
						t.Errorf("%s: %s in row 0 changed row 1", comp, what)
					}
				}
				if _, ok := ref["hidden_states.1"]; ok && !differ(ref["hidden_states.1"], ref["hidden_states.2"], 0, 0) {
					t.Errorf("%s: hidden_states.1 and .2 are equal", comp)
				}
			}
		})
	}
}

func TestUNetDependsOnEveryInput(t *testing.T) {
	t.Parallel()
	requireORT(t)
	for _, v := range variants {
		t.Run(variantName(v.name, v.opts), func(t *testing.T) {
			t.Parallel()
			dir := writeModel(t, v.name, v.opts)
			const b, h, w = 2, 8, 12 // non-square, to catch swapped axes
			c := loadComponent(t, filepath.Join(dir, "unet", "model.onnx"), map[string][]int64{"out_sample": {b, 4, h, w}})
			xl := v.name != tinymodel.NameSD
			text := int64(tinymodel.TextHidden)
			if xl {
				text += tinymodel.TextHidden2
			}
			series := func(n int, scale float64) []float64 {
				out := make([]float64, n)
				for i := range out {
					out[i] = scale * float64((i*7919)%13-6) / 6
				}
				return out
			}
			var tsShape []int64
			for _, in := range c.ins {
				if in.Name == "timestep" && len(in.Dimensions) == 1 {
					tsShape = []int64{1}
				}
			}
			feeds := []feed{
				{name: "sample", shape: []int64{b, 4, h, w}, data: series(b*4*h*w, 1)},
				{name: "timestep", shape: tsShape, data: []float64{501}},
				{name: "encoder_hidden_states", shape: []int64{b, 77, text}, data: series(b*77*int(text), 1)},
			}
			if xl {
				feeds = append(feeds,
					feed{name: "text_embeds", shape: []int64{b, tinymodel.PooledHidden}, data: series(b*tinymodel.PooledHidden, 1)},
					feed{name: "time_ids", shape: []int64{b, 6}, data: []float64{1024, 1024, 0, 0, 1024, 1024, 768, 1024, 0, 0, 768, 1024}})
			}
			ref := c.run(t, feeds...)["out_sample"]
			if !differ(ref, make([]float32, len(ref)), 0, 0) {
				t.Fatal("out_sample is all zero")
			}
			for i, f := range feeds {
				changed := append([]feed(nil), feeds...)
				switch f.name {
				case "timestep":
					changed[i] = f.with(0, 261)
				case "encoder_hidden_states":
					changed[i] = f.with(5*int(text)+3, 2.5) // one feature of token 5, row 0
				default:
					changed[i] = f.with(1, f.data[1]+1.5) // row 0
				}
				got := c.run(t, changed...)["out_sample"]
				if !differ(got, ref, 0, 0) {
					t.Errorf("changing %s leaves out_sample unchanged", f.name)
				}
			}
		})
	}
}

func TestVAE(t *testing.T) {
	t.Parallel()
	requireORT(t)
	for _, v := range variants[:5] {
		t.Run(variantName(v.name, v.opts), func(t *testing.T) {
			t.Parallel()
			dir := writeModel(t, v.name, v.opts)
			const b, h, w = 1, 3, 5
			dec := loadComponent(t, filepath.Join(dir, "vae_decoder", "model.onnx"), map[string][]int64{"sample": {b, 3, 8 * h, 8 * w}})
			latent := make([]float64, b*4*h*w)
			for i := range latent {
				latent[i] = 5 * float64(i%9-4) / 4 // the decoder sees latents / scaling factor
			}
			in := feed{name: "latent_sample", shape: []int64{b, 4, h, w}, data: latent}
			img := dec.run(t, in)["sample"]
			lo, hi := img[0], img[0]
			for _, x := range img {
				lo, hi = min(lo, x), max(hi, x)
			}
			if lo < -1 || hi > 1 || hi-lo < 0.5 {
				t.Errorf("decoded pixels span [%v, %v], want a spread inside [-1, 1]", lo, hi)
			}
			if got := dec.run(t, in.with(0, 3))["sample"]; !differ(got, img, 0, 0) {
				t.Error("changing the latent leaves the image unchanged")
			}
			enc := loadComponent(t, filepath.Join(dir, "vae_encoder", "model.onnx"), map[string][]int64{"latent_sample": {b, 4, h, w}})
			pixels := make([]float64, len(img))
			for i, x := range img {
				pixels[i] = float64(x)
			}
			lat := enc.run(t, feed{name: "sample", shape: []int64{b, 3, 8 * h, 8 * w}, data: pixels})["latent_sample"]
			if !differ(lat, make([]float32, len(lat)), 0, 0) {
				t.Error("encoded latents are all zero")
			}
		})
	}
}

// BenchmarkUNet64 times one UNet call on a batch of 2 (guidance) 64x64 latents,
// the size of a 512x512 image, with inputs and outputs allocated once.
func BenchmarkUNet64(b *testing.B) {
	requireORT(b)
	for _, name := range []string{tinymodel.NameSD, tinymodel.NameSDXL} {
		b.Run(name, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "m")
			if err := tinymodel.WriteWith(dir, name, tinymodel.WriteOptions{ONNX: true}); err != nil {
				b.Fatal(err)
			}
			c := loadComponent(b, filepath.Join(dir, "unet", "model.onnx"), nil)
			text := int64(tinymodel.TextHidden)
			var ins []ort.Value
			if name == tinymodel.NameSD {
				ins = append(ins,
					newValue(b, f32, []int64{2, 4, 64, 64}, make([]float64, 2*4*64*64)),
					newValue(b, i64, []int64{1}, []float64{500}))
			} else {
				text += tinymodel.TextHidden2
				ins = append(ins,
					newValue(b, f32, []int64{2, 4, 64, 64}, make([]float64, 2*4*64*64)),
					newValue(b, f32, nil, []float64{500}))
			}
			ins = append(ins, newValue(b, f32, []int64{2, 77, text}, make([]float64, 2*77*int(text))))
			if name != tinymodel.NameSD {
				ins = append(ins,
					newValue(b, f32, []int64{2, tinymodel.PooledHidden}, make([]float64, 2*tinymodel.PooledHidden)),
					newValue(b, f32, []int64{2, 6}, make([]float64, 12)))
			}
			out := newValue(b, f32, []int64{2, 4, 64, 64}, make([]float64, 2*4*64*64))
			b.Cleanup(func() {
				for _, v := range append(ins, out) {
					v.Destroy()
				}
			})
			b.ResetTimer()
			for b.Loop() {
				if err := c.sess.Run(ins, []ort.Value{out}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
