package imageenc

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gen2brain/webp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// noisyImage is an opaque NRGBA of uniform random pixels: the worst case for
// every codec, and what the benchmarks use.
func noisyImage(w, h int, seed uint64) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.UintN(256))
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 0xff
	}
	return img
}

// smoothImage is an opaque gradient with a little noise, the kind of content
// lossy codecs reproduce closely, so a pixel comparison can be tight.
func smoothImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(x * 255 / w),
				G: uint8(y * 255 / h),
				B: uint8(128 + r.IntN(9) - 4),
				A: 0xff,
			})
		}
	}
	return img
}

// meanAbsDiff compares two images of the same size channel by channel (8-bit,
// non-premultiplied), from their own Min corners.
func meanAbsDiff(t *testing.T, a, b image.Image) float64 {
	t.Helper()
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Size() != bb.Size() {
		t.Fatalf("sizes differ: %v vs %v", ab.Size(), bb.Size())
	}
	var sum, n float64
	for y := range ab.Dy() {
		for x := range ab.Dx() {
			ca := color.NRGBAModel.Convert(a.At(ab.Min.X+x, ab.Min.Y+y)).(color.NRGBA)
			cb := color.NRGBAModel.Convert(b.At(bb.Min.X+x, bb.Min.Y+y)).(color.NRGBA)
			for _, d := range [...][2]uint8{{ca.R, cb.R}, {ca.G, cb.G}, {ca.B, cb.B}, {ca.A, cb.A}} {
				sum += float64(max(d[0], d[1]) - min(d[0], d[1]))
				n++
			}
		}
	}
	return sum / n
}

func encode(t testing.TB, img image.Image, f Format, o Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, img, f, o); err != nil {
		t.Fatalf("Encode(%s): %v", f, err)
	}
	return buf.Bytes()
}

func decode(t *testing.T, f Format, data []byte) image.Image {
	t.Helper()
	var img image.Image
	var err error
	switch f {
	case PNG:
		img, err = png.Decode(bytes.NewReader(data))
	case JPEG:
		img, err = jpeg.Decode(bytes.NewReader(data))
	case WebP:
		img, err = webp.Decode(bytes.NewReader(data))
		if y, ok := img.(*image.NYCbCrA); ok {
			img = limitedRangeToNRGBA(y)
		}
	}
	if err != nil {
		t.Fatalf("decode %s: %v", f, err)
	}
	return img
}

// limitedRangeToNRGBA converts a decoded WebP frame to RGB. gen2brain/webp
// returns libwebp's YUV planes as an *image.NYCbCrA, but those planes are
// BT.601 limited range (Y in 16..235) while Go's YCbCr types assume JPEG's full
// range, so At would report pure blue as (15, 15, 239). The encoder is not at
// fault; the test converts with the right formula.
func limitedRangeToNRGBA(m *image.NYCbCrA) *image.NRGBA {
	b := m.Bounds()
	out := image.NewNRGBA(b)
	clamp := func(v float64) uint8 { return uint8(min(255, max(0, v+0.5))) }
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			yy := 1.164 * (float64(m.Y[m.YOffset(x, y)]) - 16)
			cb := float64(m.Cb[m.COffset(x, y)]) - 128
			cr := float64(m.Cr[m.COffset(x, y)]) - 128
			out.SetNRGBA(x, y, color.NRGBA{
				R: clamp(yy + 1.596*cr),
				G: clamp(yy - 0.813*cr - 0.391*cb),
				B: clamp(yy + 2.018*cb),
				A: m.A[m.AOffset(x, y)],
			})
		}
	}
	return out
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Format
	}{
		{"", PNG}, {"png", PNG}, {"PNG", PNG},
		{"jpeg", JPEG}, {"jpg", JPEG}, {"JPG", JPEG},
		{"webp", WebP}, {"WebP", WebP},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"gif", "png ", "image/png", ".png"} {
		if got, err := ParseFormat(bad); !errors.Is(err, ErrUnknownFormat) || got != "" {
			t.Errorf("ParseFormat(%q) = %q, %v; want ErrUnknownFormat", bad, got, err)
		}
	}
}

func TestContentTypeAndExt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		f           Format
		contentType string
		ext         string
	}{
		{PNG, "image/png", ".png"},
		{JPEG, "image/jpeg", ".jpg"},
		{WebP, "image/webp", ".webp"},
		{"gif", "application/octet-stream", ""},
	}
	for _, tt := range tests {
		if got := tt.f.ContentType(); got != tt.contentType {
			t.Errorf("%q.ContentType() = %q, want %q", tt.f, got, tt.contentType)
		}
		if got := tt.f.Ext(); got != tt.ext {
			t.Errorf("%q.Ext() = %q, want %q", tt.f, got, tt.ext)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	// Odd sizes, not multiples of JPEG's 16-pixel blocks.
	smooth := smoothImage(67, 45)
	tests := []struct {
		f       Format
		img     image.Image
		maxDiff float64 // mean absolute channel difference allowed
	}{
		{PNG, noisyImage(67, 45, 1), 0},
		{PNG, smooth, 0},
		{JPEG, smooth, 3},
		{WebP, smooth, 3},
	}
	for _, tt := range tests {
		t.Run(string(tt.f), func(t *testing.T) {
			t.Parallel()
			data := encode(t, tt.img, tt.f, Options{})
			// The bytes must be what the content type says.
			if got := httpSniff(data); got != tt.f.ContentType() {
				t.Errorf("content sniffs as %q, want %q", got, tt.f.ContentType())
			}
			out := decode(t, tt.f, data)
			if out.Bounds().Size() != tt.img.Bounds().Size() {
				t.Fatalf("decoded size %v, want %v", out.Bounds().Size(), tt.img.Bounds().Size())
			}
			if d := meanAbsDiff(t, tt.img, out); d > tt.maxDiff {
				t.Errorf("mean channel difference %.2f, want at most %.2f", d, tt.maxDiff)
			}
		})
	}
}

// httpSniff tells the three formats apart by their magic numbers.
func httpSniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "image/jpeg"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "image/webp"
	}
	return ""
}

func TestSubImagesAndOtherTypes(t *testing.T) {
	t.Parallel()
	// The left half is red, the right half blue; encoding the right half alone
	// must give blue, whatever the image type.
	full := image.NewNRGBA(image.Rect(0, 0, 64, 32))
	for y := range 32 {
		for x := range 64 {
			c := color.NRGBA{R: 0xff, A: 0xff}
			if x >= 32 {
				c = color.NRGBA{B: 0xff, A: 0xff}
			}
			full.SetNRGBA(x, y, c)
		}
	}
	rgba := image.NewRGBA(full.Bounds())
	for y := range 32 {
		for x := range 64 {
			rgba.Set(x, y, full.At(x, y))
		}
	}
	right := image.Rect(32, 0, 64, 32)
	want := image.NewUniform(color.NRGBA{B: 0xff, A: 0xff})
	sources := map[string]image.Image{
		"nrgba":    full.SubImage(right),
		"rgba":     rgba.SubImage(right),
		"uniform":  &image.Uniform{C: color.NRGBA{B: 0xff, A: 0xff}}, // no Pix at all
		"gray":     image.NewGray(image.Rect(0, 0, 32, 32)),
		"ycbcr420": image.NewYCbCr(image.Rect(0, 0, 32, 32), image.YCbCrSubsampleRatio420),
	}
	for name, src := range sources {
		if name == "uniform" {
			src = boundedImage{src, image.Rect(5, 5, 37, 37)}
		}
		for _, f := range []Format{PNG, JPEG, WebP} {
			t.Run(name+"/"+string(f), func(t *testing.T) {
				t.Parallel()
				out := decode(t, f, encode(t, src, f, Options{}))
				if out.Bounds().Size() != (image.Point{32, 32}) {
					t.Fatalf("decoded size %v, want 32x32", out.Bounds().Size())
				}
				ref := src
				if name != "gray" && name != "ycbcr420" {
					ref = boundedImage{want, image.Rect(0, 0, 32, 32)}
				}
				if d := meanAbsDiff(t, ref, out); d > 4 {
					t.Errorf("mean channel difference %.2f from the source region", d)
				}
			})
		}
	}
}

// boundedImage gives an infinite image such as *image.Uniform finite bounds.
type boundedImage struct {
	image.Image
	r image.Rectangle
}

func (b boundedImage) Bounds() image.Rectangle { return b.r }

func TestPNGTranslucent(t *testing.T) {
	t.Parallel()
	img := noisyImage(20, 10, 3)
	for i := 3; i < len(img.Pix); i += 8 {
		img.Pix[i] = uint8(i)
	}
	out := decode(t, PNG, encode(t, img, PNG, Options{PNGCompression: png.BestSpeed}))
	if d := meanAbsDiff(t, img, out); d != 0 {
		t.Errorf("translucent PNG round trip differs by %.3f", d)
	}
}

// TestJPEGFastPathIsExact checks that viewing an opaque NRGBA as RGBA for
// image/jpeg's fast path gives the very bytes the slow generic path gives.
func TestJPEGFastPathIsExact(t *testing.T) {
	t.Parallel()
	img := noisyImage(50, 34, 4)
	var slow bytes.Buffer
	if err := jpeg.Encode(&slow, boundedImage{img, img.Bounds()}, &jpeg.Options{Quality: DefaultQuality}); err != nil {
		t.Fatal(err)
	}
	if fast := encode(t, img, JPEG, Options{}); !bytes.Equal(fast, slow.Bytes()) {
		t.Error("fast-path JPEG differs from the generic encoding")
	}
	img.Pix[3] = 0x80 // no longer opaque: the view would be wrong premultiplied data
	if _, ok := jpegFastPath(img).(*image.NRGBA); !ok {
		t.Error("translucent NRGBA took the RGBA fast path")
	}
}

func TestQuality(t *testing.T) {
	t.Parallel()
	img := smoothImage(64, 64)
	for _, f := range []Format{JPEG, WebP} {
		low := encode(t, img, f, Options{Quality: 5})
		high := encode(t, img, f, Options{Quality: 100})
		if len(low) >= len(high) {
			t.Errorf("%s: quality 5 gives %d bytes, quality 100 gives %d; want fewer at 5", f, len(low), len(high))
		}
		for _, q := range []int{-1, 101} {
			if err := Encode(io.Discard, img, f, Options{Quality: q}); err == nil {
				t.Errorf("%s: quality %d accepted", f, q)
			}
		}
	}
	// PNG ignores quality, so an out-of-range value is no error there.
	if err := Encode(io.Discard, img, PNG, Options{Quality: 101}); err != nil {
		t.Errorf("png with quality 101: %v", err)
	}
}

func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	img := smoothImage(8, 8)
	if err := Encode(io.Discard, img, "gif", Options{}); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("gif: %v, want ErrUnknownFormat", err)
	}
	if err := Encode(io.Discard, image.NewNRGBA(image.Rectangle{}), PNG, Options{}); err == nil {
		t.Error("empty image accepted")
	}
	errWrite := errors.New("disk full")
	for _, f := range []Format{PNG, JPEG, WebP} {
		if err := Encode(failingWriter{errWrite}, img, f, Options{}); !errors.Is(err, errWrite) {
			t.Errorf("%s to a failing writer: %v, want it to wrap %v", f, err, errWrite)
		}
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestConcurrentEncode(t *testing.T) {
	t.Parallel()
	img := noisyImage(48, 48, 5)
	want := map[Format][]byte{}
	for _, f := range []Format{PNG, JPEG, WebP} {
		want[f] = encode(t, img, f, Options{})
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for g := range 12 {
		f := []Format{PNG, JPEG, WebP}[g%3]
		wg.Go(func() {
			for range 5 {
				var buf bytes.Buffer
				if err := Encode(&buf, img, f, Options{}); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf.Bytes(), want[f]) {
					errs <- errors.New(string(f) + ": concurrent encode differs from a lone one")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func benchmarkEncode(b *testing.B, f Format, o Options) {
	img := noisyImage(1024, 1024, 42)
	var buf bytes.Buffer
	if err := Encode(&buf, img, f, o); err != nil { // also warms WebP's module
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(img.Pix)))
	for b.Loop() {
		buf.Reset()
		if err := Encode(&buf, img, f, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/image")
}

func BenchmarkEncodePNG1024(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchmarkEncode(b, PNG, Options{}) })
	b.Run("best-speed", func(b *testing.B) { benchmarkEncode(b, PNG, Options{PNGCompression: png.BestSpeed}) })
	// The same encode without a buffer pool, to show what the pool saves.
	b.Run("default-no-pool", func(b *testing.B) {
		img := noisyImage(1024, 1024, 42)
		b.ReportAllocs()
		for b.Loop() {
			if err := png.Encode(io.Discard, img); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeJPEG1024(b *testing.B) { benchmarkEncode(b, JPEG, Options{}) }

func BenchmarkEncodeWebP1024(b *testing.B) { benchmarkEncode(b, WebP, Options{}) }
