package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/diffute/diffute/checkpoint"
	"github.com/diffute/diffute/safetensors"
	"github.com/diffute/diffute/tinymodel"
)

// randomFamilies maps make-random's --family to the base layout it copies.
var randomFamilies = map[string]checkpoint.Family{"sd15": checkpoint.SD1, "sd21": checkpoint.SD2, "sdxl": checkpoint.SDXL}

// runMakeRandom writes a full-size diffusers checkpoint of seeded random fp16
// weights: the published configs of SD 1.5, SD 2.1 or SDXL base, for measuring
// speed and memory at real sizes where no weights can be downloaded.
func runMakeRandom(env *environment, args []string) error {
	fs := newFlagSet(env, "models make-random", "models make-random --family sd15|sd21|sdxl --out DIR [--seed N] [--dtype fp16|fp32]")
	family := fs.String("family", "", "architecture: sd15, sd21 or sdxl")
	out := fs.String("out", "", "folder to write the checkpoint into (created; must be empty or absent)")
	seed := fs.Uint64("seed", 1, "seed of the random weights")
	dtype := fs.String("dtype", "fp16", "weights' precision: fp16 or fp32")
	if err := parseFlagsNoArgs(fs, env, args); err != nil {
		return err
	}
	f, ok := randomFamilies[*family]
	if !ok {
		return fmt.Errorf("models make-random: --family %q: want sd15, sd21 or sdxl", *family)
	}
	if *out == "" {
		return errors.New("models make-random: --out is required (the folder to write the checkpoint into)")
	}
	dt := map[string]safetensors.DType{"fp16": safetensors.F16, "fp32": safetensors.F32}[strings.ToLower(*dtype)]
	if dt == "" {
		return fmt.Errorf("models make-random: --dtype %q: want fp16 or fp32", *dtype)
	}
	if entries, err := os.ReadDir(*out); err == nil && len(entries) > 0 {
		return fmt.Errorf("models make-random: --out %s is not empty; choose a new folder", *out)
	}
	start := time.Now()
	if err := tinymodel.WriteRandom(*out, checkpoint.BaseLayout(f), *seed, dt); err != nil {
		return fmt.Errorf("models make-random: %w", err)
	}
	var size int64
	_ = filepath.Walk(*out, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			size += info.Size()
		}
		return nil
	})
	fmt.Fprintf(env.stderr, "Wrote a random-weight %s checkpoint (%s, %.2f GB) in %s. It makes noise, not pictures.\n",
		*family, *dtype, float64(size)/1e9, time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(env.stdout, *out)
	return nil
}
