package metrics

import (
	"context"
	"image"
	"sync"
	"time"

	"github.com/diffute/diffute"
)

// Engine wraps a diffute.Engine to time its calls and denoising steps and count
// the images it makes.
type Engine struct {
	diffute.Engine
	Metrics *Metrics
}

var _ diffute.Engine = (*Engine)(nil)

// Generate calls the wrapped engine. A step's duration is the time between two
// progress reports divided by the steps they cover; the first report also covers
// model loading and text encoding, so it is not counted.
func (e *Engine) Generate(ctx context.Context, req diffute.GenerateRequest, progress func(diffute.Progress)) ([]image.Image, error) {
	start := time.Now()
	var (
		mu       sync.Mutex
		last     time.Time
		lastStep int
	)
	wrapped := func(p diffute.Progress) {
		mu.Lock()
		now := time.Now()
		if !last.IsZero() && p.Step > lastStep {
			n := p.Step - lastStep
			e.Metrics.ObserveStep(req.Model, now.Sub(last)/time.Duration(n), n)
		}
		if last.IsZero() || p.Step != lastStep {
			last, lastStep = now, p.Step
		}
		mu.Unlock()
		if progress != nil {
			progress(p)
		}
	}
	imgs, err := e.Engine.Generate(ctx, req, wrapped)
	if err == nil {
		e.Metrics.ObserveGenerate(req.Model, len(imgs), time.Since(start))
	}
	return imgs, err
}
