package onnx

import (
	"context"
	"testing"

	"github.com/diffute/diffute"
)

// TestTinyDiffusersModels runs the tiny models as Diffute serves them: diffusers
// folders whose graphs the builder makes, like any real checkpoint's.
func TestTinyDiffusersModels(t *testing.T) {
	for _, name := range []string{tinySD, tinySDXL, tinySDXLTurbo} {
		t.Run(name, func(t *testing.T) {
			p, err := LoadPipeline(tinyModel(t, name+"+diffusers"))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if p.Format() != FormatDiffusers {
				t.Fatalf("format %s", p.Format())
			}
			req := diffute.GenerateRequest{Prompt: "a lighthouse at dusk", Width: 64, Height: 64, Steps: 2, Seed: 7, NumImages: 2}
			imgs, err := p.Generate(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 2 || imgs[0].Bounds().Dx() != 64 {
				t.Fatalf("%d images", len(imgs))
			}
			again, err := p.Generate(context.Background(), req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !samePixels(t, imgs[0], again[0]) || samePixels(t, imgs[0], imgs[1]) {
				t.Error("same seed must give the same pixels, image 1 other pixels than image 0")
			}
			// A latent side that does not halve evenly down the UNet (72/8 = 9):
			// the up path upsamples to each skip's size, as diffusers does.
			odd := diffute.GenerateRequest{Prompt: "a lighthouse", Width: 72, Height: 88, Steps: 1, Seed: 1, NumImages: 1}
			if imgs, err := p.Generate(context.Background(), odd, nil); err != nil || imgs[0].Bounds().Dx() != 72 || imgs[0].Bounds().Dy() != 88 {
				t.Errorf("72x88: %v", err)
			}
		})
	}
}
