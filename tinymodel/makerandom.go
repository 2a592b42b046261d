package tinymodel

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"math/rand/v2"
	"path"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/diffute/diffute/checkpoint"
	og "github.com/diffute/diffute/onnxgraph"
	"github.com/diffute/diffute/safetensors"
	"github.com/diffute/diffute/sdgraph"
)

// Components are the diffusers components a random checkpoint gets weights for.
var Components = []string{"text_encoder", "text_encoder_2", "unet", "vae"}

// WriteRandom writes a diffusers-layout checkpoint into dir: every file of layout
// (model_index.json, scheduler/, tokenizer*/, each component's config.json) and,
// for each component with a config.json, seeded random weights of dtype (F16 or
// F32) for exactly the parameters its architecture needs. It is how speed and
// memory are measured at real sizes on a machine that cannot download weights:
// speed does not depend on the weights' values. The same seed writes the same
// bytes; conversion runs on every core.
func WriteRandom(dir string, layout fs.FS, seed uint64, dtype safetensors.DType) error {
	if dtype != safetensors.F16 && dtype != safetensors.F32 {
		return fmt.Errorf("tinymodel: random weights are F16 or F32, not %s", dtype)
	}
	if _, err := checkpoint.WriteLayout(layout, dir); err != nil {
		return fmt.Errorf("tinymodel: write layout: %w", err)
	}
	for _, c := range Components {
		cfg, err := fs.ReadFile(layout, path.Join(c, "config.json"))
		if err != nil {
			continue
		}
		params, err := ComponentParams(c, cfg)
		if err != nil {
			return err
		}
		if err := safetensors.WriteFile(filepath.Join(dir, c, WeightsFile(c, dtype)), map[string]string{"format": "pt"}, RandomWeights(params, seed, dtype)); err != nil {
			return fmt.Errorf("tinymodel: %s: %w", c, err)
		}
	}
	return nil
}

// parallelFill fills a large tensor in chunks of 1 Mi values, each from its own
// generator (seed, name, chunk), on every core.
func parallelFill(p sdgraph.Param, seed uint64, dtype safetensors.DType) func([]byte) error {
	const chunk = 1 << 20
	return func(dst []byte) error {
		h := fnv.New64a()
		h.Write([]byte(p.Name))
		stream := h.Sum64()
		center, scale := initOf(p)
		size := dtype.Size()
		n := len(dst) / size
		chunks := (n + chunk - 1) / chunk
		var wg sync.WaitGroup
		next := make(chan int)
		for range min(runtime.NumCPU(), max(chunks, 1)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range next {
					r := rand.New(rand.NewPCG(seed^uint64(c)*0x9e3779b97f4a7c15, stream))
					for i := c * chunk; i < min(n, (c+1)*chunk); i++ {
						v := float32(center + scale*(2*r.Float64()-1))
						if size == 2 {
							binary.LittleEndian.PutUint16(dst[2*i:], og.Float16Bits(v))
						} else {
							binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
						}
					}
				}
			}()
		}
		for c := range chunks {
			next <- c
		}
		close(next)
		wg.Wait()
		return nil
	}
}
