package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/diffute/diffute"
	"github.com/diffute/diffute/checkpoint"
	"github.com/diffute/diffute/sched"
)

// Native sizes by family, for models whose UNet config does not say
// (ONNX exports, configs without sample_size).
const (
	nativeSideSD1   = 512
	nativeSideSD2V  = 768 // SD 2.x v-prediction (768-v)
	nativeSideSDXL  = 1024
	nativeSideTurbo = 512 // SD-Turbo and SDXL-Turbo are trained at 512
)

// unetConfig is the part of unet/config.json DescribeModel reads.
type unetConfig struct {
	SampleSize        int `json:"sample_size"`
	CrossAttentionDim int `json:"cross_attention_dim"`
}

// DescribeModel tells what a model at path is without loading it: family,
// native size, default steps and guidance, source format. It reads configs
// and headers only, so it needs no ONNX Runtime. path is a folder (diffusers
// or ONNX layout) or a single-file .safetensors checkpoint, as Engine
// resolves names. The native size is 512 for turbo models (trailing timestep
// spacing), else the UNet's sample_size × 8, else the family's: 512 SD 1.x,
// 768 SD 2.x v-prediction, 1024 SDXL.
func DescribeModel(name, path string) (diffute.ModelInfo, error) {
	info := diffute.ModelInfo{Name: name, Schedulers: append([]string(nil), diffute.SchedulerNames...)}
	dir := path
	st, err := os.Stat(path)
	if err != nil {
		return info, fmt.Errorf("onnx: describe %s: %w", name, err)
	}
	var singleFamily checkpoint.Family
	if st.Mode().IsRegular() {
		sf, err := checkpoint.OpenSingleFile(path)
		if err != nil {
			return info, fmt.Errorf("onnx: describe %s: %w", name, err)
		}
		singleFamily = sf.Family
		sf.Close()
		tmp, err := os.MkdirTemp("", "diffute-describe-")
		if err != nil {
			return info, fmt.Errorf("onnx: %w", err)
		}
		defer os.RemoveAll(tmp)
		if err := checkpoint.WriteBaseLayout(singleFamily, tmp); err != nil {
			return info, fmt.Errorf("onnx: describe %s: %w", name, err)
		}
		dir = tmp
		info.SourceFormat = string(FormatSingleFile)
	}
	family, err := DetectFamily(dir)
	if err != nil {
		return info, fmt.Errorf("onnx: describe %s: %w", name, err)
	}
	if info.SourceFormat == "" {
		idx, err := readModelIndex(dir)
		if err != nil {
			return info, fmt.Errorf("onnx: describe %s: %w", name, err)
		}
		info.SourceFormat = string(detectFormat(dir, idx))
	}
	cfg, err := sched.LoadConfig(filepath.Join(dir, "scheduler", "scheduler_config.json"))
	if err != nil {
		return info, fmt.Errorf("onnx: describe %s: %w", name, err)
	}
	var unet unetConfig
	if b, err := os.ReadFile(filepath.Join(dir, "unet", "config.json")); err == nil {
		if err := json.Unmarshal(b, &unet); err != nil {
			return info, fmt.Errorf("onnx: describe %s: unet/config.json: %w", name, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return info, fmt.Errorf("onnx: describe %s: %w", name, err)
	}
	turbo := strings.EqualFold(cfg.TimestepSpacing, "trailing")
	vpred := cfg.PredictionType == "v_prediction"
	info.Turbo = turbo
	switch {
	case family == SDXL:
		info.Family = "sdxl"
	case singleFamily == checkpoint.SD2 || vpred || unet.CrossAttentionDim == 1024:
		info.Family = "sd2"
	default:
		info.Family = "sd1"
	}
	side := nativeSideSD1
	switch {
	case turbo:
		side = nativeSideTurbo
	case unet.SampleSize > 0:
		side = unet.SampleSize * 8
	case family == SDXL:
		side = nativeSideSDXL
	case vpred:
		side = nativeSideSD2V
	}
	info.Width, info.Height = side, side
	info.DefaultSteps, info.DefaultGuidance = modelDefaults(family, turbo)
	return info, nil
}

// modelDefaults are the steps and guidance scale of a request that leaves
// them unset (see Pipeline.Defaults).
func modelDefaults(family Family, turbo bool) (steps int, guidance float64) {
	switch {
	case turbo:
		return DefaultTurboSteps, 0
	case family == SDXL:
		return DefaultSteps, DefaultGuidanceSDXL
	default:
		return DefaultSteps, DefaultGuidanceSD
	}
}
