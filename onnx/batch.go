package onnx

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// requestBatcher denoises the chunks of different requests that wait together
// in one UNet batch (WithRequestBatching): requests of one model with the same
// size, steps, scheduler and guidance, within the UNet memory budget. Every
// image keeps its own seed and generator, and each request its own prompt, so
// an image is the one it would be alone (up to the float rounding a batch size
// can change in ONNX Runtime's kernels). One batch runs at a time: a GPU runs
// one large batch faster than the same rows as concurrent small ones, which is
// the point of batching at all.
type requestBatcher struct {
	p    *Pipeline
	wait time.Duration // how long a batch waits for more requests before it starts

	mu      sync.Mutex
	queue   []*pendingChunk // in arrival order
	running bool            // the driver goroutine is alive

	stats *BatchStats // shared by an Engine's pipelines
}

// BatchStats counts the UNet batches of batching pipelines
// (WithRequestBatching): all of them, and those shared by several requests.
type BatchStats struct {
	Batches, Shared atomic.Int64
}

// batchKey is what the chunks of one UNet batch must share.
type batchKey struct {
	width, height, steps int
	scheduler            string
	guidance             float64
}

func keyOf(c chunk) batchKey {
	return batchKey{c.pr.req.Width, c.pr.req.Height, c.pr.steps, c.pr.req.Scheduler, c.pr.guidance}
}

// pendingChunk is one request's chunk waiting for, or in, a batch.
type pendingChunk struct {
	ctx  context.Context
	c    chunk
	done chan struct{} // closed when latents or err is set

	latents []float32
	err     error

	mu   sync.Mutex
	gone bool // the caller stopped waiting: no more progress calls
}

// denoise queues c and waits for its latents.
func (b *requestBatcher) denoise(ctx context.Context, c chunk) ([]float32, error) {
	pc := &pendingChunk{ctx: ctx, c: c, done: make(chan struct{})}
	step := c.step
	pc.c.step = func() {
		pc.mu.Lock()
		defer pc.mu.Unlock()
		if !pc.gone && step != nil {
			step()
		}
	}
	b.mu.Lock()
	b.queue = append(b.queue, pc)
	if !b.running {
		b.running = true
		go b.drive()
	}
	b.mu.Unlock()
	select {
	case <-pc.done:
		return pc.latents, pc.err
	case <-ctx.Done():
		pc.mu.Lock()
		pc.gone = true
		pc.mu.Unlock()
		return nil, ctx.Err()
	}
}

// drive runs batches until the queue is empty. Each batch waits b.wait for
// more requests, only ever with one queued: the goroutine ends as soon as the
// queue is empty.
func (b *requestBatcher) drive() {
	for {
		if b.wait > 0 {
			time.Sleep(b.wait)
		}
		b.mu.Lock()
		group := b.takeLocked()
		b.mu.Unlock()
		if len(group) > 0 {
			b.run(group)
		}
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
	}
}

// takeLocked removes the next batch from the queue: the oldest live chunk and
// the later ones with its key, as many as the memory budget holds. Chunks
// whose callers have gone are dropped.
func (b *requestBatcher) takeLocked() []*pendingChunk {
	var group, rest []*pendingChunk
	var key batchKey
	rows, budget := 0, 0
	for _, pc := range b.queue {
		if pc.ctx.Err() != nil {
			pc.err = pc.ctx.Err()
			close(pc.done)
			continue
		}
		if group == nil {
			key = keyOf(pc.c)
			budget = b.p.imagesPerCall(pc.c.pr.req.Height/8, pc.c.pr.req.Width/8, pc.c.pr.guided)
		}
		if keyOf(pc.c) == key && (group == nil || rows+pc.c.n <= budget) {
			group = append(group, pc)
			rows += pc.c.n
			continue
		}
		rest = append(rest, pc)
	}
	b.queue = rest
	return group
}

// run denoises group in one batch. The batch stops early only when every
// caller in it has gone.
func (b *requestBatcher) run(group []*pendingChunk) {
	finish := func(err error) {
		for _, pc := range group {
			pc.err = err
			close(pc.done)
		}
	}
	if err := b.p.acquire(); err != nil {
		finish(err)
		return
	}
	defer b.p.release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var live atomic.Int64
	live.Store(int64(len(group)))
	chunks := make([]chunk, len(group))
	for i, pc := range group {
		chunks[i] = pc.c
		stop := context.AfterFunc(pc.ctx, func() {
			if live.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	b.stats.Batches.Add(1)
	if len(group) > 1 {
		b.stats.Shared.Add(1)
	}
	first := group[0].c
	latents, err := b.p.denoise(ctx, chunks, first.pr.req.Height/8, first.pr.req.Width/8, nil)
	if err != nil {
		finish(err)
		return
	}
	per := b.p.unet.channels * (first.pr.req.Height / 8) * (first.pr.req.Width / 8)
	off := 0
	for _, pc := range group {
		pc.latents = latents[off : off+pc.c.n*per : off+pc.c.n*per]
		off += pc.c.n * per
		close(pc.done)
	}
}
