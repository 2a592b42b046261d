package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/diffute/diffute/checkpoint"
)

// modelInfo is what models list says about one model.
type modelInfo struct {
	family    string // sd1, sd2, sdxl, or "-" when not told
	format    string // diffusers, single-file, onnx
	precision string // F16, F32, BF16, or "-"
	bytes     int64  // of the weights the pipeline loads
}

func (m modelInfo) String() string {
	return fmt.Sprintf("%s\t%s\t%s\t%s", m.family, m.format, m.precision, formatBytes(m.bytes))
}

// describeModel inspects a local model path: a .safetensors single file, or a
// folder in the diffusers or the ONNX layout. It reads headers and configs
// only. What it cannot tell is "-".
func describeModel(p string) modelInfo {
	info := modelInfo{family: "-", format: "-", precision: "-"}
	st, err := os.Stat(p)
	if err != nil {
		return info
	}
	if !st.IsDir() {
		info.format, info.bytes = "single-file", st.Size()
		sf, err := checkpoint.OpenSingleFile(p)
		if err != nil {
			info.family = "unknown"
			return info
		}
		defer sf.Close()
		info.family, info.precision = string(sf.Family), string(sf.Precision)
		return info
	}
	if f, err := checkpoint.LayoutFamily(p); err == nil {
		info.family = string(f)
	}
	if isDiffusersDir(p) {
		info.format = "diffusers"
		for _, comp := range []string{"unet", "vae", "text_encoder", "text_encoder_2"} {
			c, err := checkpoint.OpenComponent(filepath.Join(p, comp), checkpoint.ComponentOptions{})
			if err != nil {
				continue
			}
			if comp == "unet" {
				info.precision = string(c.Precision)
			}
			for _, f := range c.Files {
				if fi, err := os.Stat(f); err == nil {
					info.bytes += fi.Size()
				}
			}
			c.Close()
		}
		return info
	}
	if _, err := os.Stat(filepath.Join(p, "unet", "model.onnx")); err == nil {
		info.format = "onnx"
		_ = filepath.WalkDir(p, func(f string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.Contains(d.Name(), ".onnx") || d.Name() == "weights.pb") {
				if fi, err := os.Stat(f); err == nil { // follows cache symlinks
					info.bytes += fi.Size()
				}
			}
			return nil
		})
	}
	return info
}

// isDiffusersDir reports whether dir holds a diffusers pipeline with
// safetensors weights for its UNet.
func isDiffusersDir(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err != nil {
		return false
	}
	_, _, ok := checkpoint.ChooseWeights(func(n string) bool {
		fi, err := os.Stat(filepath.Join(dir, "unet", n))
		return err == nil && fi.Mode().IsRegular()
	}, "")
	return ok
}

// formatBytes writes a size for people.
func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
