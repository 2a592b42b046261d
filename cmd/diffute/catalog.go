package main

import (
	"context"
	"sync"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/httpapi"
	"github.com/diffute/diffute/onnx"
)

// modelCatalog describes served models for the API (native size, defaults)
// from their configs, with no engine: an API-only process (--workers 0)
// answers the same. A description is kept once read; a failure is not, so a
// model pulled after start is described on the next request.
type modelCatalog struct {
	src *modelSource

	mu    sync.Mutex
	known map[string]diffute.ModelInfo
}

var _ httpapi.ModelCatalog = (*modelCatalog)(nil)

func newModelCatalog(src *modelSource) *modelCatalog {
	return &modelCatalog{src: src, known: map[string]diffute.ModelInfo{}}
}

// DescribeModel implements httpapi.ModelCatalog.
func (c *modelCatalog) DescribeModel(ctx context.Context, name string) (diffute.ModelInfo, error) {
	c.mu.Lock()
	info, ok := c.known[name]
	c.mu.Unlock()
	if ok {
		return info, nil
	}
	path, err := c.src.Resolve(ctx, name)
	if err != nil {
		return diffute.ModelInfo{}, err
	}
	if info, err = onnx.DescribeModel(name, path); err != nil {
		return diffute.ModelInfo{}, err
	}
	c.mu.Lock()
	c.known[name] = info
	c.mu.Unlock()
	return info, nil
}
