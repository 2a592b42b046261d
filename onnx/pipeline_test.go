package onnx

import (
	"context"
	"errors"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/sched"
)

const (
	tinySD        = "diffute/tiny-sd"
	tinySDXL      = "diffute/tiny-sdxl"
	tinySDXLTurbo = "diffute/tiny-sdxl-turbo"
	tinySDXLFP16  = "diffute/tiny-sdxl+fp16"
	tinySDFP16    = "diffute/tiny-sd+fp16"
	tinySDScalar  = "diffute/tiny-sd+scalar"
)

func ptr[T any](v T) *T { return &v }

func baseRequest() diffute.GenerateRequest {
	return diffute.GenerateRequest{
		Prompt:    "a lighthouse at dusk",
		NumImages: 2,
		Width:     64,
		Height:    64,
		Steps:     3,
		Seed:      7,
	}
}

func generate(t *testing.T, p *Pipeline, req diffute.GenerateRequest) []image.Image {
	t.Helper()
	imgs, err := p.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if len(imgs) != req.NumImages {
		t.Fatalf("got %d images, want %d", len(imgs), req.NumImages)
	}
	for i, img := range imgs {
		if b := img.Bounds(); b.Dx() != req.Width || b.Dy() != req.Height {
			t.Fatalf("image %d is %v, want %d×%d", i, b, req.Width, req.Height)
		}
	}
	return imgs
}

func TestTinyModels(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		model  string
		family Family
	}{
		{tinySD, SD},
		{tinySDXL, SDXL},
		{tinySDXLTurbo, SDXL},
		{tinySDXLFP16, SDXL},
		{tinySDFP16, SD},
		{tinySDScalar, SD},
	} {
		t.Run(c.model, func(t *testing.T) {
			t.Parallel()
			p := sharedPipeline(t, c.model)
			if p.Family() != c.family {
				t.Fatalf("family %v, want %v", p.Family(), c.family)
			}
			req := baseRequest()
			a := generate(t, p, req)
			b := generate(t, p, req)
			for i := range a {
				if !samePixels(t, a[i], b[i]) {
					t.Fatalf("image %d differs between two runs with the same seed", i)
				}
			}
			if samePixels(t, a[0], a[1]) {
				t.Error("the two images of one request are identical (seeds Seed and Seed+1)")
			}
			if px := pixels(t, a[0]); allEqual(px) {
				t.Error("image is one flat colour")
			}
			// Image i uses seed Seed+i: image 1 of seed 7 is image 0 of seed 8.
			next := req
			next.Seed, next.NumImages = 8, 1
			c := generate(t, p, next)
			if !samePixels(t, a[1], c[0]) {
				t.Error("image 1 of seed 7 differs from image 0 of seed 8")
			}
			if samePixels(t, a[0], c[0]) {
				t.Error("seeds 7 and 8 give the same image")
			}
			other := req
			other.Prompt = "a red bicycle in the snow"
			d := generate(t, p, other)
			if samePixels(t, a[0], d[0]) {
				t.Error("a different prompt gives the same image")
			}
		})
	}
}

func allEqual(px []uint8) bool {
	for i := 4; i < len(px); i++ {
		if px[i] != px[i%4] {
			return false
		}
	}
	return true
}

func TestGuidance(t *testing.T) {
	t.Parallel()
	for _, model := range []string{tinySD, tinySDXL} {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			p := sharedPipeline(t, model)
			req := baseRequest()
			var rows []int
			for _, g := range []float64{0, 1, 7.5} {
				req.GuidanceScale = ptr(g)
				var st runStats
				res, err := p.run(context.Background(), req, nil, &st)
				if err != nil || len(res.Images) != 2 {
					t.Fatalf("guidance %g: %d images, %v", g, len(res.Images), err)
				}
				rows = append(rows, st.unetRows)
			}
			// No unconditional rows when guidance ≤ 1: one row per image.
			if rows[0] != 2 || rows[1] != 2 || rows[2] != 4 {
				t.Errorf("UNet batch rows for guidance 0, 1, 7.5 = %v, want [2 2 4]", rows)
			}
			req.GuidanceScale = ptr(1.0)
			off := generate(t, p, req)
			req.GuidanceScale = ptr(7.5)
			on := generate(t, p, req)
			if samePixels(t, off[0], on[0]) {
				t.Error("guidance 1 and 7.5 give the same image")
			}
		})
	}
}

func TestNegativePrompt(t *testing.T) {
	t.Parallel()
	for _, model := range []string{tinySD, tinySDXL} {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			p := sharedPipeline(t, model)
			req := baseRequest()
			req.GuidanceScale = ptr(7.5)
			plain := generate(t, p, req)
			req.NegativePrompt = ptr("blurry, low quality")
			neg := generate(t, p, req)
			if samePixels(t, plain[0], neg[0]) {
				t.Error("a negative prompt does not change the image")
			}
		})
	}
}

func TestSchedulers(t *testing.T) {
	t.Parallel()
	p := sharedPipeline(t, tinySD)
	seen := map[string][]uint8{}
	var mu sync.Mutex
	t.Run("all", func(t *testing.T) {
		for _, name := range append([]string{""}, sched.Names...) {
			t.Run("scheduler="+name, func(t *testing.T) {
				t.Parallel()
				req := baseRequest()
				req.Scheduler = name
				a := generate(t, p, req)
				b := generate(t, p, req)
				if !samePixels(t, a[0], b[0]) || !samePixels(t, a[1], b[1]) {
					t.Fatal("not deterministic")
				}
				mu.Lock()
				seen[name] = pixels(t, a[0])
				mu.Unlock()
			})
		}
	})
	if string(seen["euler"]) == string(seen["euler_a"]) || string(seen["euler"]) == string(seen["ddim"]) {
		t.Error("different schedulers give identical images")
	}
	req := baseRequest()
	req.Scheduler = "heun"
	_, err := p.Generate(context.Background(), req, nil)
	if err == nil || diffute.ErrorField(err) != "scheduler" {
		t.Errorf("unknown scheduler: err = %v, want a scheduler field error", err)
	}
}

func TestTurboDefaults(t *testing.T) {
	t.Parallel()
	p := sharedPipeline(t, tinySDXLTurbo)
	steps, g := p.Defaults()
	if steps != 1 || g != 0 {
		t.Fatalf("turbo defaults: %d steps, guidance %g; want 1, 0", steps, g)
	}
	req := baseRequest()
	req.Steps = 0
	var calls []diffute.Progress
	imgs, err := p.Generate(context.Background(), req, func(pr diffute.Progress) { calls = append(calls, pr) })
	if err != nil || len(imgs) != 2 {
		t.Fatalf("%d images, %v", len(imgs), err)
	}
	if len(calls) != 1 || calls[0] != (diffute.Progress{Step: 1, Steps: 1}) {
		t.Errorf("progress calls %v, want one of 1/1", calls)
	}
	sd := sharedPipeline(t, tinySD)
	if s, g := sd.Defaults(); s != 25 || g != 7.5 {
		t.Errorf("SD defaults %d, %g", s, g)
	}
	xl := sharedPipeline(t, tinySDXL)
	if s, g := xl.Defaults(); s != 25 || g != 5 {
		t.Errorf("SDXL defaults %d, %g", s, g)
	}
}

func TestProgressAndCancel(t *testing.T) {
	t.Parallel()
	p := sharedPipeline(t, tinySDXL)
	req := baseRequest()
	var got []diffute.Progress
	generateWith := func(ctx context.Context, progress func(diffute.Progress)) error {
		_, err := p.Generate(ctx, req, progress)
		return err
	}
	if err := generateWith(context.Background(), func(pr diffute.Progress) { got = append(got, pr) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != (diffute.Progress{Step: 1, Steps: 3}) || got[2] != (diffute.Progress{Step: 3, Steps: 3}) {
		t.Fatalf("progress %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := generateWith(ctx, func(diffute.Progress) { calls++; cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("progress called %d times after cancelling at step 1", calls)
	}
}

func TestConcurrentGenerate(t *testing.T) {
	t.Parallel()
	p := sharedPipeline(t, tinySDXL)
	req := baseRequest()
	want := generate(t, p, req)
	const workers = 4
	results := make([][]image.Image, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w], errs[w] = p.Generate(context.Background(), req, nil)
		}()
	}
	wg.Wait()
	for w := 0; w < workers; w++ {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		for i := range want {
			if !samePixels(t, want[i], results[w][i]) {
				t.Fatalf("worker %d image %d differs from the sequential run", w, i)
			}
		}
	}
}

func TestBatchSplitMatchesBatched(t *testing.T) {
	t.Parallel()
	dir := tinyModel(t, tinySD)
	split, err := LoadPipeline(dir, WithMaxBatchBytes(1))
	if err != nil {
		t.Fatal(err)
	}
	defer split.Close()
	req := baseRequest()
	req.NumImages = 3
	var st runStats
	var progress []diffute.Progress
	res, err := split.run(context.Background(), req, func(pr diffute.Progress) { progress = append(progress, pr) }, &st)
	if err != nil {
		t.Fatal(err)
	}
	if st.calls != 3 || st.unetRows != 2 {
		t.Errorf("budget of one image: %d calls of %d rows, want 3 of 2", st.calls, st.unetRows)
	}
	if len(progress) != 9 || progress[8] != (diffute.Progress{Step: 9, Steps: 9}) {
		t.Errorf("progress over split calls: %v", progress)
	}
	// Batching may change ORT's kernel blocking and so the last bits of a float;
	// allow one level of rounding.
	batched := generate(t, sharedPipeline(t, tinySD), req)
	for i := range batched {
		if d := maxDiff(pixels(t, batched[i]), pixels(t, res.Images[i])); d > 1 {
			t.Errorf("image %d: split and batched runs differ by up to %d levels", i, d)
		}
	}
}

func maxDiff(a, b []uint8) int {
	m := 0
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

func TestLongPromptWarns(t *testing.T) {
	t.Parallel()
	p := sharedPipeline(t, tinySD)
	req := baseRequest()
	req.NumImages = 1
	req.Prompt = strings.Repeat("lighthouse ", 100)
	res, err := p.Run(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 1 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "77 tokens") {
		t.Errorf("%d images, warnings %q", len(res.Images), res.Warnings)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	p := sharedPipeline(t, tinySD)
	for _, c := range []struct {
		field  string
		modify func(*diffute.GenerateRequest)
	}{
		{"width", func(r *diffute.GenerateRequest) { r.Width = 60 }},
		{"height", func(r *diffute.GenerateRequest) { r.Height = 0 }},
		{"width", func(r *diffute.GenerateRequest) { r.Width = 1 << 20 }},
		{"num_images", func(r *diffute.GenerateRequest) { r.NumImages = 0 }},
		{"steps", func(r *diffute.GenerateRequest) { r.Steps = -1 }},
		{"guidance_scale", func(r *diffute.GenerateRequest) { r.GuidanceScale = ptr(-2.0) }},
	} {
		req := baseRequest()
		c.modify(&req)
		imgs, err := p.Generate(context.Background(), req, nil)
		if err == nil || diffute.ErrorField(err) != c.field || diffute.ErrorCode(err) != diffute.EUNPROCESSABLE || imgs != nil {
			t.Errorf("%s: err = %v", c.field, err)
		}
	}
}

func TestBadModelFolders(t *testing.T) {
	t.Parallel()
	src := tinyModel(t, tinySD)
	xl := tinyModel(t, tinySDXL)
	cases := []struct {
		name   string
		src    string
		break_ func(dir string) error
		want   string
	}{
		{"missing unet", src, func(dir string) error { return os.Remove(filepath.Join(dir, "unet", "model.onnx")) }, "missing unet/model.onnx"},
		{"corrupt unet", src, func(dir string) error {
			junk := make([]byte, 4096)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range junk {
				junk[i] = byte(r.Uint32())
			}
			return os.WriteFile(filepath.Join(dir, "unet", "model.onnx"), junk, 0o644)
		}, "unet/model.onnx"},
		{"corrupt text encoder", src, func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "text_encoder", "model.onnx"), []byte("not a model"), 0o644)
		}, "text_encoder/model.onnx"},
		{"missing vae", src, func(dir string) error { return os.RemoveAll(filepath.Join(dir, "vae_decoder")) }, "missing vae_decoder/model.onnx"},
		{"missing tokenizer_2", xl, func(dir string) error { return os.RemoveAll(filepath.Join(dir, "tokenizer_2")) }, "tokenizer_2"},
		{"refiner layout", xl, func(dir string) error {
			if err := os.RemoveAll(filepath.Join(dir, "text_encoder")); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(`{"_class_name":"StableDiffusionXLImg2ImgPipeline","text_encoder":[null,null]}`), 0o644)
		}, "refiner"},
		{"no folder", src, func(dir string) error { return os.RemoveAll(dir) }, "model folder"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := copyDir(t, c.src)
			if err := c.break_(dir); err != nil {
				t.Fatal(err)
			}
			p, err := LoadPipeline(dir)
			if err == nil {
				p.Close()
				t.Fatal("loaded a broken folder")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestCUDAOnCPUBuild(t *testing.T) {
	t.Parallel()
	requireORT(t)
	_, err := New(Config{Device: "cuda:0"})
	if err == nil {
		t.Skip("this ONNX Runtime library has a CUDA execution provider")
	}
	// The CPU build has no CUDA provider; ONNX Runtime 1.29 with the CUDA plugin
	// provider beside it fails to load it without CUDA 13 (or finds no GPU).
	if !errors.Is(err, ErrNoCUDA) && !errors.Is(err, ErrCUDALibraryMissing) && !strings.Contains(err.Error(), "found no GPU") {
		t.Errorf("err = %v, want ErrNoCUDA or ErrCUDALibraryMissing", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("err = %q, want one line", err)
	}
	t.Logf("cuda:0 on this library: %v", err)
}

// TestPrecisionChoices: an ONNX export computes in its exported types, so an
// explicit precision other than auto is refused with the reason; an unknown
// precision names the choices.
func TestPrecisionChoices(t *testing.T) {
	t.Parallel()
	dir := tinyModel(t, tinySD)
	_, err := LoadPipeline(dir, WithPrecision(PrecisionFP16))
	if err == nil || !strings.Contains(err.Error(), "ONNX export") || !strings.Contains(err.Error(), "use auto") {
		t.Errorf("fp16 on an ONNX export: err = %v", err)
	}
	_, err = LoadPipeline(dir, WithPrecision("int8"))
	if err == nil || !strings.Contains(err.Error(), `precision "int8": want one of auto, fp32, fp16`) {
		t.Errorf("unknown precision: err = %v", err)
	}
	p, err := LoadPipeline(dir, WithPrecision(PrecisionAuto))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if g := p.Graph(); g.Format != FormatONNX || g.UNetFloat16 || g.CUDAKernels {
		t.Errorf("graph %+v, want an ONNX export as exported", g)
	}
}

func TestScalingFactor(t *testing.T) {
	t.Parallel()
	src := tinyModel(t, tinySD)
	req := baseRequest()
	req.NumImages = 1
	want := generate(t, sharedPipeline(t, tinySD), req)

	custom := copyDir(t, src)
	if err := os.WriteFile(filepath.Join(custom, "vae_decoder", "config.json"), []byte(`{"scaling_factor": 1.0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	none := copyDir(t, src)
	if err := os.Remove(filepath.Join(none, "vae_decoder", "config.json")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir   string
		scale float64
	}{{custom, 1}, {none, sdScaleFactor}} {
		p, err := LoadPipeline(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		if p.scaleFactor != c.scale {
			t.Errorf("%s: scale factor %g, want %g", c.dir, p.scaleFactor, c.scale)
		}
		if c.scale == 1 && samePixels(t, want[0], generate(t, p, req)[0]) {
			t.Error("scaling_factor 1 decodes the same pixels as the model's own factor")
		}
		p.Close()
	}
}

func TestDetectFamily(t *testing.T) {
	t.Parallel()
	for model, want := range map[string]Family{tinySD: SD, tinySDXL: SDXL, tinySDXLTurbo: SDXL} {
		if got, err := DetectFamily(tinyModel(t, model)); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", model, got, err, want)
		}
	}
	dir := t.TempDir()
	// Optimum 1.10-1.21 write the img2img class into SDXL base exports: the
	// components, not the class name, tell a refiner.
	for _, c := range []string{"text_encoder", "text_encoder_2"} {
		if err := os.MkdirAll(filepath.Join(dir, c), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, c, "config.json"), []byte(`{}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(`{"_class_name":"StableDiffusionXLImg2ImgPipeline"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := DetectFamily(dir); err != nil || got != SDXL {
		t.Errorf("SDXL base exported with the img2img class: %v, %v; want SDXL", got, err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "text_encoder")); err != nil {
		t.Fatal(err)
	}
	if got, err := DetectFamily(dir); err != nil || got != SDXLRefiner {
		t.Errorf("refiner: %v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model_index.json"), []byte(`{`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DetectFamily(dir); err == nil || !strings.Contains(err.Error(), "model_index.json") {
		t.Errorf("broken model_index.json: %v", err)
	}
}

// TestFusedStepMatchesUnfused checks that the one-pass step (guidance, scheduler and
// next input together) gives exactly the pixels of the separate passes.
func TestFusedStepMatchesUnfused(t *testing.T) {
	t.Parallel()
	for _, model := range []string{tinySD, tinySDXL} {
		for _, scheduler := range []string{"euler", "euler_a"} {
			for _, g := range []float64{1, 7.5} {
				p := sharedPipeline(t, model)
				req := baseRequest()
				req.Scheduler = scheduler
				req.GuidanceScale = ptr(g)
				req.Steps = 4
				var fused, plain runStats
				plain.unfused = true
				a, err := p.run(context.Background(), req, nil, &fused)
				if err != nil {
					t.Fatal(err)
				}
				b, err := p.run(context.Background(), req, nil, &plain)
				if err != nil {
					t.Fatal(err)
				}
				for i := range a.Images {
					if !samePixels(t, a.Images[i], b.Images[i]) {
						t.Errorf("%s %s guidance %g image %d: fused and unfused steps differ", model, scheduler, g, i)
					}
				}
			}
		}
	}
}
