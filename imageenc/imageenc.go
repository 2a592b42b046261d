package imageenc

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"strings"
	"sync"

	"github.com/gen2brain/webp"

	"github.com/diffute/diffute"
)

// Format is an output image format.
type Format string

// The formats Encode writes. Their names are the ones the API accepts in
// output_format.
const (
	PNG  Format = diffute.FormatPNG
	JPEG Format = diffute.FormatJPEG
	WebP Format = diffute.FormatWebP
)

// DefaultQuality is the JPEG and WebP quality used when Options.Quality is 0:
// high enough that artefacts are hard to see in generated images.
const DefaultQuality = 90

// webpMethod is libwebp's speed/size trade-off (0 fast .. 6 small). 4 is
// libwebp's own default.
const webpMethod = 4

// ErrUnknownFormat is returned (wrapped) by ParseFormat and Encode for a format
// this package does not write.
var ErrUnknownFormat = errors.New("imageenc: unknown format")

// ParseFormat returns the Format named by s, ignoring case: "" means PNG and
// "jpg" is accepted for JPEG.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "png":
		return PNG, nil
	case "jpeg", "jpg":
		return JPEG, nil
	case "webp":
		return WebP, nil
	}
	return "", fmt.Errorf("%w %q: want png, jpeg or webp", ErrUnknownFormat, s)
}

// ContentType returns the media type of f, or "application/octet-stream" for an
// unknown format.
func (f Format) ContentType() string {
	switch f {
	case PNG:
		return "image/png"
	case JPEG:
		return "image/jpeg"
	case WebP:
		return "image/webp"
	}
	return "application/octet-stream"
}

// Ext returns the file extension of f with its dot (".png", ".jpg", ".webp"), or
// "" for an unknown format.
func (f Format) Ext() string {
	switch f {
	case PNG:
		return ".png"
	case JPEG:
		return ".jpg"
	case WebP:
		return ".webp"
	}
	return ""
}

// Options tune Encode. The zero value is ready to use.
type Options struct {
	// Quality is the JPEG and WebP quality, 1 to 100; 0 means DefaultQuality.
	// Both stay lossy at 100; PNG is the lossless choice.
	Quality int
	// PNGCompression is the PNG compression level; the zero value is
	// png.DefaultCompression. png.BestSpeed is roughly twice as fast for a
	// somewhat larger file.
	PNGCompression png.CompressionLevel
}

func (o Options) quality() (int, error) {
	switch {
	case o.Quality == 0:
		return DefaultQuality, nil
	case o.Quality < 1 || o.Quality > 100:
		return 0, fmt.Errorf("imageenc: quality %d outside 1..100", o.Quality)
	}
	return o.Quality, nil
}

// Encode writes img to w in format f.
func Encode(w io.Writer, img image.Image, f Format, o Options) error {
	if img.Bounds().Empty() {
		return errors.New("imageenc: empty image")
	}
	switch f {
	case PNG:
		enc := png.Encoder{CompressionLevel: o.PNGCompression, BufferPool: pngBuffers}
		if err := enc.Encode(w, img); err != nil {
			return fmt.Errorf("imageenc: png: %w", err)
		}
		return nil
	case JPEG:
		q, err := o.quality()
		if err != nil {
			return err
		}
		if err := jpeg.Encode(w, jpegFastPath(img), &jpeg.Options{Quality: q}); err != nil {
			return fmt.Errorf("imageenc: jpeg: %w", err)
		}
		return nil
	case WebP:
		q, err := o.quality()
		if err != nil {
			return err
		}
		opts := webp.Options{Quality: q, Method: webpMethod}
		if err := webp.Encode(w, tightPixels(img), opts); err != nil {
			return fmt.Errorf("imageenc: webp: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w %q", ErrUnknownFormat, string(f))
}

// bufferPool hands PNG encoders back their buffers. png.Encoder allocates
// about 100 KiB of zlib state and row buffers per call without one.
type bufferPool struct{ pool sync.Pool }

// Get implements png.EncoderBufferPool.
func (p *bufferPool) Get() *png.EncoderBuffer {
	b, _ := p.pool.Get().(*png.EncoderBuffer)
	return b // nil tells the encoder to allocate a new one
}

// Put implements png.EncoderBufferPool.
func (p *bufferPool) Put(b *png.EncoderBuffer) { p.pool.Put(b) }

var pngBuffers png.EncoderBufferPool = &bufferPool{}

// jpegFastPath returns an *image.RGBA view of an opaque *image.NRGBA. With full
// alpha the two layouts hold the same bytes, and image/jpeg only has a fast
// path for *image.RGBA; any other type goes pixel by pixel through At, which is
// several times slower. Other images are returned as they are.
func jpegFastPath(img image.Image) image.Image {
	if n, ok := img.(*image.NRGBA); ok && n.Opaque() {
		return &image.RGBA{Pix: n.Pix, Stride: n.Stride, Rect: n.Rect}
	}
	return img
}

// tightPixels returns img as an *image.NRGBA, or an opaque *image.RGBA, whose
// pixels start at the origin with no row padding, copying only when needed.
// gen2brain/webp hands the Pix slice of those two types straight to libwebp as
// straight-alpha RGBA and assumes that layout, so a sub-image would otherwise be
// encoded from the wrong bytes, and a translucent premultiplied RGBA with the
// wrong colours.
func tightPixels(img image.Image) image.Image {
	b := img.Bounds()
	switch m := img.(type) {
	case *image.NRGBA:
		if b.Min == (image.Point{}) && m.Stride == 4*b.Dx() {
			return m
		}
	case *image.RGBA:
		if b.Min == (image.Point{}) && m.Stride == 4*b.Dx() && m.Opaque() {
			return m
		}
	}
	dst := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Src)
	return dst
}
