package queue

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/diffute/diffute"
)

// fakeEngine makes deterministic images from the request: image i is a flat
// colour derived from Seed+i, sized as asked. GenerateFunc, when set, replaces it.
type fakeEngine struct {
	GenerateFunc func(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress)) ([]image.Image, error)

	mu    sync.Mutex
	calls []diffute.GenerateRequest
}

var _ diffute.Engine = (*fakeEngine)(nil)

func (e *fakeEngine) Generate(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress)) ([]image.Image, error) {
	e.mu.Lock()
	e.calls = append(e.calls, req)
	e.mu.Unlock()
	if e.GenerateFunc != nil {
		return e.GenerateFunc(ctx, req, progress)
	}
	return fakeImages(ctx, req, progress)
}

// Recipe resolves req the way a model with 25 default steps, guidance 7.5 and
// an Euler schedule would.
func (e *fakeEngine) Recipe(_ context.Context, req diffute.GenerateRequest) (diffute.Recipe, error) {
	steps, g := req.Steps, 7.5
	if steps == 0 {
		steps = 25
	}
	if req.GuidanceScale != nil {
		g = *req.GuidanceScale
	}
	seeds := make([]int64, req.NumImages)
	for i := range seeds {
		seeds[i] = req.Seed + int64(i)
	}
	return diffute.Recipe{Model: req.Model, ModelSource: "local:" + req.Model, RNG: req.RNG, Seeds: seeds,
		Scheduler: "euler", TimestepSpacing: "leading", Steps: steps, GuidanceScale: g, Width: req.Width, Height: req.Height}, nil
}

func (e *fakeEngine) Calls() []diffute.GenerateRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]diffute.GenerateRequest(nil), e.calls...)
}

func fakeImages(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress)) ([]image.Image, error) {
	steps := max(req.Steps, 2)
	for s := 1; s <= steps; s++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(diffute.Progress{Step: s, Steps: steps})
		}
	}
	out := make([]image.Image, req.NumImages)
	for i := range out {
		out[i] = seedImage(req.Seed+int64(i), req.Width, req.Height)
	}
	return out, nil
}

func seedImage(seed int64, w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	c := color.NRGBA{R: uint8(seed), G: uint8(seed >> 8), B: uint8(seed >> 16), A: 255}
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// dirMedia is a small MediaStore on a directory, enough for the workers.
type dirMedia struct {
	dir string
	mu  sync.Mutex
	put map[string]int // key → number of Puts
}

var _ diffute.MediaStore = (*dirMedia)(nil)

func newDirMedia(dir string) *dirMedia { return &dirMedia{dir: dir, put: map[string]int{}} }

func (m *dirMedia) Put(_ context.Context, key string, data []byte, _ string) error {
	p := filepath.Join(m.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	m.mu.Lock()
	m.put[key]++
	m.mu.Unlock()
	return nil
}

func (m *dirMedia) Puts(key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.put[key]
}

func (m *dirMedia) Open(_ context.Context, key string) (io.ReadSeekCloser, diffute.MediaInfo, error) {
	b, err := os.ReadFile(filepath.Join(m.dir, filepath.FromSlash(key)))
	if err != nil {
		return nil, diffute.MediaInfo{}, diffute.Errorf(diffute.ENOTFOUND, "no %s", key)
	}
	return nopCloser{bytes.NewReader(b)}, diffute.MediaInfo{Size: int64(len(b))}, nil
}

func (m *dirMedia) URL(_ context.Context, key string, ttl time.Duration) (string, error) {
	return "https://media.test/" + key + "?ttl=" + ttl.String(), nil
}

func (m *dirMedia) Delete(_ context.Context, key string) error {
	err := os.Remove(filepath.Join(m.dir, filepath.FromSlash(key)))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
