package onnx

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/diffute/diffute/internal/fixtures"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diffute/diffute"
	ort "github.com/yalue/onnxruntime_go"
)

// The reference checkpoints and tensors in ../shared/fixtures were made by the
// real diffusers and transformers classes; these tests hold the graphs Diffute
// builds from those checkpoints to them.

func fixturesDir(t testing.TB) string {
	t.Helper()
	fixtures.Path(t, "reference")
	return fixtures.Path(t)
}

type reference struct {
	dir          string
	Conditioning []struct {
		ID              string  `json:"id"`
		InputIDs        []int64 `json:"input_ids"`
		NegativeIDs     []int64 `json:"negative_input_ids"`
		InputIDs2       []int64 `json:"input_ids_2"`
		NegativeIDs2    []int64 `json:"negative_input_ids_2"`
		NegativeIsZeros bool    `json:"negative_is_zeros"`
		Tensors         map[string]string
	} `json:"conditioning"`
	UNetCall []struct {
		Conditioning string            `json:"conditioning"`
		Timestep     float64           `json:"timestep"`
		Tensors      map[string]string `json:"tensors"`
	} `json:"unet_call"`
	VAEDecode struct {
		Tensors map[string]string `json:"tensors"`
	} `json:"vae_decode"`
	Tensors []struct {
		Name  string  `json:"name"`
		Shape []int64 `json:"shape"`
		File  string  `json:"file"`
	} `json:"tensors"`
}

func loadReference(t testing.TB, name string) *reference {
	t.Helper()
	dir := filepath.Join(fixturesDir(t), "reference", name)
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	r := &reference{dir: dir}
	if err := json.Unmarshal(raw, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// tensor reads a reference tensor and its shape.
func (r *reference) tensor(t testing.TB, name string) ([]float32, []int64) {
	t.Helper()
	for _, e := range r.Tensors {
		if e.Name != name {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(r.dir, e.File))
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, e.Shape
	}
	t.Fatalf("reference tensor %s missing", name)
	return nil, nil
}

func (r *reference) conditioning(id string) int {
	for i, c := range r.Conditioning {
		if c.ID == id {
			return i
		}
	}
	return -1
}

func maxAbsDiff(a, b []float32) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("%d values, want %d", len(a), len(b))
	}
	var m float64
	for i := range a {
		d := math.Abs(float64(a[i] - b[i]))
		if math.IsNaN(d) {
			return math.Inf(1), nil
		}
		m = max(m, d)
	}
	return m, nil
}

func assertClose(t testing.TB, what string, got, want []float32, tol float64) {
	t.Helper()
	d, err := maxAbsDiff(got, want)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if d > tol {
		t.Errorf("%s: max abs diff %.3g > %.0e", what, d, tol)
	} else {
		t.Logf("%s: max abs diff %.3g", what, d)
	}
}

// runText runs a text encoder on ids and returns its outputs in session order.
func runText(t testing.TB, te *textEncoder, ids []int64) [][]float32 {
	t.Helper()
	in, err := newIDsTensor(te.idsType, 1, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil}
	if te.pooled != nil {
		outs = append(outs, nil)
	}
	if err := te.session().Run([]ort.Value{in}, outs); err != nil {
		t.Fatal(err)
	}
	var res [][]float32
	for _, o := range outs {
		res = append(res, append([]float32(nil), o.(*ort.Tensor[float32]).GetData()...))
		o.Destroy()
	}
	return res
}

func concatLast(a, b []float32, da, db int) []float32 {
	rows := len(a) / da
	out := make([]float32, 0, rows*(da+db))
	for r := range rows {
		out = append(out, a[r*da:(r+1)*da]...)
		out = append(out, b[r*db:(r+1)*db]...)
	}
	return out
}

// conditioningOf encodes ids the way the reference pipeline did.
func conditioningOf(t testing.TB, p *Pipeline, ids, ids2 []int64) (embeds, pooled []float32) {
	h := runText(t, p.te1, ids)
	if p.te2 == nil {
		return h[0], nil
	}
	h2 := runText(t, p.te2, ids2)
	return concatLast(h[0], h2[0], p.te1.hiddenDim, p.te2.hiddenDim), h2[1]
}

func checkFixtureStages(t *testing.T, p *Pipeline, r *reference, tol float64) {
	for _, c := range r.Conditioning {
		emb, pooled := conditioningOf(t, p, c.InputIDs, c.InputIDs2)
		want, _ := r.tensor(t, c.Tensors["prompt_embeds"])
		assertClose(t, c.ID+" prompt_embeds", emb, want, tol)
		if pooled != nil {
			want, _ := r.tensor(t, c.Tensors["pooled_prompt_embeds"])
			assertClose(t, c.ID+" pooled_prompt_embeds", pooled, want, tol)
		}
		if c.NegativeIDs != nil {
			neg, negPooled := conditioningOf(t, p, c.NegativeIDs, c.NegativeIDs2)
			want, _ := r.tensor(t, c.Tensors["negative_prompt_embeds"])
			assertClose(t, c.ID+" negative_prompt_embeds", neg, want, tol)
			if negPooled != nil {
				want, _ := r.tensor(t, c.Tensors["negative_pooled_prompt_embeds"])
				assertClose(t, c.ID+" negative_pooled_prompt_embeds", negPooled, want, tol)
			}
		}
	}
	latents, _ := r.tensor(t, "unet_latents")
	for _, call := range r.UNetCall {
		c := r.Conditioning[r.conditioning(call.Conditioning)]
		pos, _ := r.tensor(t, c.Tensors["prompt_embeds"])
		neg, _ := r.tensor(t, c.Tensors["negative_prompt_embeds"])
		sample := append(append([]float32(nil), latents...), latents...)
		inputs := []ort.Value{}
		add := func(data []float32, shape ...int64) {
			v, err := ort.NewTensor(ort.NewShape(shape...), data)
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, v)
		}
		add(sample, 2, 4, 8, 8)
		ts, err := newTimestep(p.unet.timestep, call.Timestep)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, ts)
		add(append(append([]float32(nil), neg...), pos...), 2, 77, int64(len(pos)/77))
		if p.family == SDXL {
			pp, _ := r.tensor(t, c.Tensors["pooled_prompt_embeds"])
			np, _ := r.tensor(t, c.Tensors["negative_pooled_prompt_embeds"])
			add(append(append([]float32(nil), np...), pp...), 2, int64(len(pp)))
			ti, _ := r.tensor(t, c.Tensors["add_time_ids"])
			nti, _ := r.tensor(t, c.Tensors["negative_add_time_ids"])
			add(append(append([]float32(nil), nti...), ti...), 2, 6)
		}
		out := []ort.Value{nil}
		if err := p.unet.session().Run(inputs, out); err != nil {
			t.Fatal(err)
		}
		want, _ := r.tensor(t, call.Tensors["noise_pred"])
		assertClose(t, call.Conditioning+" unet noise_pred", out[0].(*ort.Tensor[float32]).GetData(), want, tol)
		out[0].Destroy()
		for _, v := range inputs {
			v.Destroy()
		}
	}
	in, _ := r.tensor(t, r.VAEDecode.Tensors["decoder_input"])
	x, err := ort.NewTensor(ort.NewShape(1, 4, 8, 8), in)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	out := []ort.Value{nil}
	if err := p.vae.session().Run([]ort.Value{x}, out); err != nil {
		t.Fatal(err)
	}
	want, _ := r.tensor(t, r.VAEDecode.Tensors["decoded"])
	assertClose(t, "vae decoded", out[0].(*ort.Tensor[float32]).GetData(), want, tol)
	out[0].Destroy()
}

// TestFixtureCheckpointsDiffusersLayout loads each reference checkpoint's
// diffusers folder through the graph builder and compares every stage with
// diffusers' own outputs: the conditioning, one UNet call, one VAE decode.
func TestFixtureCheckpointsDiffusersLayout(t *testing.T) {
	requireORT(t)
	cases := []struct {
		name, variant string
		tol           float64
		fused         bool   // fused attention, the default; unfused is the fallback
		precision     string // the UNet's; fp32 on the CPU by default
	}{
		{"sd15", "", 1e-4, false, ""},
		{"sd21v", "fp32", 1e-4, false, ""},
		// The fp16 variant is the default where a folder has one; its stages
		// carry the weights' fp16 rounding.
		{"sd21v", "", 2e-2, false, ""},
		{"sdxl", "", 1e-4, false, ""},
		{"sd15", "", 1e-4, true, ""},
		{"sd21v", "fp32", 1e-4, true, ""},
		{"sdxl", "", 1e-4, true, ""},
		// A float16 UNet (the default on CUDA), against diffusers' float32
		// outputs: within half precision's rounding. sd21v has
		// upcast_attention, whose scores stay float32.
		{"sd15", "", 1e-2, false, PrecisionFP16},
		{"sd21v", "fp32", 1e-2, false, PrecisionFP16},
		{"sdxl", "", 1e-2, false, PrecisionFP16},
		{"sd15", "", 1e-2, true, PrecisionFP16},
		{"sdxl", "", 1e-2, true, PrecisionFP16},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/fused=%t/%s", c.name, c.variant, c.fused, c.precision), func(t *testing.T) {
			r := loadReference(t, c.name)
			p, err := LoadPipeline(filepath.Join(fixturesDir(t), "checkpoints", c.name), WithVariant(c.variant), WithFusedOperators(c.fused), WithPrecision(c.precision))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Format() != FormatDiffusers {
				t.Errorf("format %s, want diffusers", p.Format())
			}
			checkFixtureStages(t, p, r, c.tol)
		})
	}
}

// TestFixtureSingleFileCheckpoints loads the original-layout checkpoints that
// diffusers' own conversion scripts wrote from the reference folders (float16),
// with those folders' configs, and holds every stage to diffusers' outputs
// within the weights' fp16 rounding.
func TestFixtureSingleFileCheckpoints(t *testing.T) {
	requireORT(t)
	for _, name := range []string{"sd15", "sdxl"} {
		t.Run(name, func(t *testing.T) {
			ckpts := filepath.Join(fixturesDir(t), "checkpoints")
			p, err := LoadPipeline(filepath.Join(ckpts, name+".safetensors"), WithLayout(filepath.Join(ckpts, name)))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Format() != FormatSingleFile {
				t.Errorf("format %s, want single-file", p.Format())
			}
			checkFixtureStages(t, p, loadReference(t, name), 2e-2)
		})
	}
}

// TestSingleFileAgainstTheWrongConfig: a tiny checkpoint read with the full-size
// SD 1.5 configs fails at load naming the first weight whose shape disagrees.
func TestSingleFileAgainstTheWrongConfig(t *testing.T) {
	requireORT(t)
	_, err := LoadPipeline(filepath.Join(fixturesDir(t), "checkpoints", "sd15.safetensors"))
	if err == nil || !strings.Contains(err.Error(), "has shape") || !strings.Contains(err.Error(), "sd15.safetensors") {
		t.Fatalf("err = %v, want a shape mismatch naming the weight and the file", err)
	}
	t.Log(err)
}

// TestFixturePipelineImages generates each reference pipeline run (64×64, 4
// steps, Euler and DPM++ 2M, seeds 0 and 42, torch's CPU noise) from the
// reference checkpoints and compares the picture with the one diffusers saved:
// every 8-bit channel within 2 levels; with a float16 UNet (the default on
// CUDA), within 3 (measured: at most 2).
func TestFixturePipelineImages(t *testing.T) {
	requireORT(t)
	schedulers := map[string]string{"EulerDiscreteScheduler": "euler", "DPMSolverMultistepScheduler": "dpmpp_2m"}
	for _, c := range []struct {
		name, precision string
		levels          int
	}{{"sd15", PrecisionFP32, 2}, {"sd21v", PrecisionFP32, 2}, {"sdxl", PrecisionFP32, 2},
		{"sd15", PrecisionFP16, 3}, {"sd21v", PrecisionFP16, 3}, {"sdxl", PrecisionFP16, 3}} {
		name := c.name
		t.Run(name+"/"+c.precision, func(t *testing.T) {
			r := loadReference(t, name)
			raw, err := os.ReadFile(filepath.Join(r.dir, "index.json"))
			if err != nil {
				t.Fatal(err)
			}
			var idx struct {
				Runs []struct {
					ID             string  `json:"id"`
					Prompt         string  `json:"prompt"`
					NegativePrompt string  `json:"negative_prompt"`
					Seed           int64   `json:"seed"`
					Steps          int     `json:"num_inference_steps"`
					Guidance       float64 `json:"guidance_scale"`
					Height, Width  int
					Scheduler      string `json:"scheduler_class"`
					PNG            string `json:"png"`
				} `json:"pipeline_runs"`
			}
			if err := json.Unmarshal(raw, &idx); err != nil {
				t.Fatal(err)
			}
			p, err := LoadPipeline(filepath.Join(fixturesDir(t), "checkpoints", name), WithVariant("fp32"), WithPrecision(c.precision))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for _, run := range idx.Runs {
				neg, g := run.NegativePrompt, run.Guidance
				req := diffute.GenerateRequest{
					Prompt: run.Prompt, NegativePrompt: &neg, NumImages: 1, Width: run.Width, Height: run.Height,
					Steps: run.Steps, GuidanceScale: &g, Scheduler: schedulers[run.Scheduler], Seed: run.Seed, RNG: diffute.RNGTorch,
				}
				imgs, err := p.Generate(context.Background(), req, nil)
				if err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(filepath.Join(r.dir, run.PNG))
				if err != nil {
					t.Fatal(err)
				}
				want, err := png.Decode(f)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				worst := 0
				for y := range run.Height {
					for x := range run.Width {
						a := color.NRGBAModel.Convert(imgs[0].At(x, y)).(color.NRGBA)
						b := color.NRGBAModel.Convert(want.At(x, y)).(color.NRGBA)
						for _, d := range []int{int(a.R) - int(b.R), int(a.G) - int(b.G), int(a.B) - int(b.B)} {
							worst = max(worst, d, -d)
						}
					}
				}
				if worst > c.levels {
					t.Errorf("%s: a channel differs by %d levels from diffusers' image, want at most %d", run.ID, worst, c.levels)
				} else {
					t.Logf("%s: largest channel difference %d levels", run.ID, worst)
				}
			}
		})
	}
}

// TestFixtureVAEEncoder builds the VAE encoder of each reference checkpoint
// from its config (for image-to-image) and runs it on a 64×64 image: the
// latent distribution's mean and log-variance at 1/8 of the side, finite.
func TestFixtureVAEEncoder(t *testing.T) {
	requireORT(t)
	for _, name := range []string{"sd15", "sdxl"} {
		src := &builtSource{configDir: filepath.Join(fixturesDir(t), "checkpoints", name), variant: "fp32"}
		m, err := src.info("vae_encoder")
		if err != nil {
			t.Fatal(err)
		}
		s, err := m.newSession([]string{"sample"}, []string{"latent_parameters"}, sessionConfig{})
		if err != nil {
			t.Fatal(err)
		}
		img := make([]float32, 3*64*64)
		for i := range img {
			img[i] = float32(i%97)/48 - 1
		}
		x, _ := ort.NewTensor(ort.NewShape(1, 3, 64, 64), img)
		out := []ort.Value{nil}
		if err := s.Run([]ort.Value{x}, out); err != nil {
			t.Fatal(err)
		}
		got := out[0].(*ort.Tensor[float32])
		if shape := got.GetShape(); len(shape) != 4 || shape[1] != 8 || shape[2] != 8 || shape[3] != 8 {
			t.Errorf("%s: latent_parameters shape %v, want [1 8 8 8]", name, shape)
		}
		for _, v := range got.GetData() {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s: non-finite latent parameter", name)
			}
		}
		x.Destroy()
		out[0].Destroy()
		s.Destroy()
		src.release()
	}
}
