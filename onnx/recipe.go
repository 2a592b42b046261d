package onnx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/sched"
)

// Recipe resolves req as Generate would, on the model's own defaults.
func (p *Pipeline) Recipe(req diffute.GenerateRequest) (diffute.Recipe, error) {
	pr, err := p.params(req)
	if err != nil {
		return diffute.Recipe{}, err
	}
	s, err := sched.New(req.Scheduler, p.schedCfg, pr.steps)
	if err != nil {
		return diffute.Recipe{}, err
	}
	source, err := p.source()
	if err != nil {
		return diffute.Recipe{}, err
	}
	seeds := make([]int64, req.NumImages)
	for i := range seeds {
		seeds[i] = req.Seed + int64(i)
	}
	return diffute.Recipe{
		Model: req.Model, ModelSource: source, RNG: req.RNG, Seeds: seeds,
		Scheduler: s.Name(), TimestepSpacing: p.schedCfg.Spacing(req.Scheduler),
		Steps: pr.steps, GuidanceScale: pr.guidance, Width: req.Width, Height: req.Height,
	}, nil
}

// Recipe resolves req on its model, loading it if needed.
func (e *Engine) Recipe(ctx context.Context, req diffute.GenerateRequest) (diffute.Recipe, error) {
	if req.RNG == "" {
		req.RNG = e.cfg.RNG
	}
	p, err := e.Load(ctx, req.Model)
	if err != nil {
		return diffute.Recipe{}, err
	}
	return p.Recipe(req)
}

// source names the weights the pipeline loaded (diffute.Recipe.ModelSource). A
// single file's hash is computed once, on first use.
func (p *Pipeline) source() (string, error) {
	p.sourceOnce.Do(func() {
		if p.format == FormatSingleFile {
			p.sourceName, p.sourceErr = fileSHA256(p.dir)
			p.sourceName = "sha256:" + p.sourceName
			return
		}
		p.sourceName = hubSource(p.dir)
	})
	return p.sourceName, p.sourceErr
}

// hubSource is "hf:ORG/NAME@COMMIT" for a snapshot of the Hugging Face cache
// (…/models--ORG--NAME/snapshots/COMMIT), else "local:FOLDER".
func hubSource(dir string) string {
	dir = filepath.Clean(dir)
	rev, snapshots := filepath.Base(dir), filepath.Dir(dir)
	if filepath.Base(snapshots) == "snapshots" {
		if repo, ok := strings.CutPrefix(filepath.Base(filepath.Dir(snapshots)), "models--"); ok {
			return "hf:" + strings.Replace(repo, "--", "/", 1) + "@" + rev
		}
	}
	return "local:" + filepath.Base(dir)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("onnx: hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("onnx: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// recipeState is the part of a Pipeline Recipe fills lazily.
type recipeState struct {
	sourceOnce sync.Once
	sourceName string
	sourceErr  error
}
