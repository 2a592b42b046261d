package onnx

import (
	"fmt"
	"image"
	"math"

	ort "github.com/yalue/onnxruntime_go"
)

// vaeDecoder turns latents into pixels.
type vaeDecoder struct {
	rel  string
	sess *ort.DynamicAdvancedSession
	in   ort.InputOutputInfo // latent_sample [1,C,h,w]
	out  ort.InputOutputInfo // sample [1,3,H,W]
}

func (v *vaeDecoder) session() *ort.DynamicAdvancedSession {
	if v == nil {
		return nil
	}
	return v.sess
}

func openVAEDecoder(src componentSource, sc sessionConfig) (*vaeDecoder, error) {
	m, err := src.info("vae_decoder")
	if err != nil {
		return nil, err
	}
	if err := m.checkOnlyInputs("latent_sample"); err != nil {
		return nil, err
	}
	v := &vaeDecoder{rel: m.rel}
	if v.in, err = requireFloatInput(m, "latent_sample", 4); err != nil {
		return nil, err
	}
	if v.out, err = m.requireOutput("sample"); err != nil {
		return nil, err
	}
	if len(v.out.Dimensions) != 4 {
		return nil, fmt.Errorf("onnx: %s output sample has rank %d, want 4", m.rel, len(v.out.Dimensions))
	}
	if v.sess, err = m.newSession([]string{"latent_sample"}, []string{"sample"}, sc); err != nil {
		return nil, err
	}
	return v, nil
}

// decode decodes one image's latents ([C,lh,lw], already divided by the scale
// factor) into a width×height image. The pipeline's arithmetic stays in float32; an
// fp16 decoder gets its input converted.
func (v *vaeDecoder) decode(latents []float32, channels, lh, lw int) (*image.NRGBA, error) {
	inShape, err := resolveShape(v.in.Dimensions, ort.NewShape(1, int64(channels), int64(lh), int64(lw)))
	if err != nil {
		return nil, fmt.Errorf("onnx: %s latent_sample: %w", v.rel, err)
	}
	in, err := newFloatTensor(v.in.DataType, inShape)
	if err != nil {
		return nil, err
	}
	defer in.destroy()
	in.store(0, latents)
	w, h := lw*8, lh*8
	outShape, err := resolveShape(v.out.Dimensions, ort.NewShape(1, 3, int64(h), int64(w)))
	if err != nil {
		return nil, fmt.Errorf("onnx: %s sample for %d×%d: %w", v.rel, w, h, err)
	}
	out, err := newFloatTensor(v.out.DataType, outShape)
	if err != nil {
		return nil, err
	}
	defer out.destroy()
	if err := v.sess.Run([]ort.Value{in.value}, []ort.Value{out.value}); err != nil {
		return nil, fmt.Errorf("onnx: run %s: %w", v.rel, err)
	}
	pixels := make([]float32, out.len())
	out.load(0, pixels)
	return toNRGBA(pixels, w, h), nil
}

// toNRGBA converts a [3,h,w] decoder output in [-1,1] to an opaque image:
// (x/2+0.5) clamped to [0,1], ×255, rounded. NaN becomes 0.
func toNRGBA(chw []float32, w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	plane := w * h
	for y := 0; y < h; y++ {
		row := img.Pix[y*img.Stride:]
		for x := 0; x < w; x++ {
			i := y*w + x
			row[4*x+0] = toByte(chw[i])
			row[4*x+1] = toByte(chw[plane+i])
			row[4*x+2] = toByte(chw[2*plane+i])
			row[4*x+3] = 255
		}
	}
	return img
}

func toByte(x float32) uint8 {
	v := float64(x)/2 + 0.5
	if !(v > 0) { // also NaN
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8(math.Round(v * 255))
}
