package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoSafetensors means a pipeline folder has no safetensors weights for its
// UNet (an ONNX export, or PyTorch .bin files only): a loader that also reads
// the ONNX layout takes it from there.
var ErrNoSafetensors = errors.New("checkpoint: no safetensors weights")

// Source formats a Pipeline can come from.
const (
	FormatDiffusers  = "diffusers"
	FormatSingleFile = "single-file"
)

// Pipeline is everything a Stable Diffusion pipeline loads, whatever the
// source: the layout files (model_index.json, scheduler/, tokenizer[_2]/, each
// component's config.json) and each component's weights under diffusers names.
type Pipeline struct {
	Path   string
	Format string // FormatDiffusers or FormatSingleFile
	Family Family
	// Layout holds the non-weight files, with the paths of the diffusers layout.
	Layout fs.FS
	// Components maps "unet", "vae", "text_encoder" and, for SDXL,
	// "text_encoder_2" to their weights.
	Components map[string]Weights
	// PredictionType overrides the scheduler config's when non-empty (a
	// single file whose metadata says what it predicts).
	PredictionType string

	closers []func() error
}

// PipelineOptions choose among a source's files.
type PipelineOptions struct {
	// Variant is passed to OpenComponent for a diffusers folder.
	Variant string
	// LayoutDir, for a single file, takes the layout files from this diffusers
	// folder instead of the family's embedded base layout (as diffusers'
	// from_single_file(config=…) does): needed when a checkpoint's shapes are
	// not the published model's, as the tiny test checkpoints' are not.
	LayoutDir string
}

// OpenPipeline opens path: a folder in the diffusers layout, or a single-file
// .safetensors checkpoint. A folder without safetensors UNet weights is
// ErrNoSafetensors. A single file whose structural shapes (input and output
// channels, widths, text encoder depth) disagree with its layout's configs is
// refused with the weight, the config key and both values named.
func OpenPipeline(path string, opts PipelineOptions) (*Pipeline, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if !st.IsDir() {
		return openSingleFilePipeline(path, opts)
	}
	return openDiffusersPipeline(path, opts)
}

func openSingleFilePipeline(path string, opts PipelineOptions) (*Pipeline, error) {
	sf, err := OpenSingleFile(path)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Path: path, Format: FormatSingleFile, Family: sf.Family, Layout: BaseLayout(sf.Family),
		Components: sf.Components, PredictionType: sf.PredictionType, closers: []func() error{sf.Close}}
	if opts.LayoutDir != "" {
		if _, err := os.Stat(filepath.Join(opts.LayoutDir, "model_index.json")); err != nil {
			sf.Close()
			return nil, fmt.Errorf("checkpoint: layout folder for %s: %w", path, err)
		}
		p.Layout = os.DirFS(opts.LayoutDir)
	}
	if err := checkShapes(path, p.Layout, p.Components); err != nil {
		sf.Close()
		return nil, err
	}
	return p, nil
}

func openDiffusersPipeline(dir string, opts PipelineOptions) (*Pipeline, error) {
	index, err := os.ReadFile(filepath.Join(dir, "model_index.json"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checkpoint: %s has no model_index.json (not a diffusers pipeline folder)", dir)
		}
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var named map[string]json.RawMessage
	if err := json.Unmarshal(index, &named); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "model_index.json"), err)
	}
	if _, _, ok := ChooseWeights(func(n string) bool {
		fi, err := os.Stat(filepath.Join(dir, UNet, n))
		return err == nil && fi.Mode().IsRegular()
	}, ""); !ok {
		return nil, fmt.Errorf("%w: %s/unet has no *.safetensors weights", ErrNoSafetensors, dir)
	}
	family, err := LayoutFamily(dir)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Path: dir, Format: FormatDiffusers, Family: family, Layout: os.DirFS(dir), Components: map[string]Weights{}}
	for _, comp := range []string{UNet, VAE, TextEncoder, TextEncoder2} {
		v, ok := named[comp]
		if !ok || string(v) == "null" || strings.ReplaceAll(string(v), " ", "") == "[null,null]" {
			if comp == TextEncoder2 {
				continue
			}
			p.Close()
			return nil, fmt.Errorf("checkpoint: %s: model_index.json names no %s", dir, comp)
		}
		c, err := OpenComponent(filepath.Join(dir, comp), ComponentOptions{Variant: opts.Variant})
		if err != nil {
			p.Close()
			return nil, err
		}
		p.Components[comp] = c.Weights
		p.closers = append(p.closers, c.Close)
	}
	return p, nil
}

// Close unmaps every weight file; the Weights' data are invalid afterwards.
func (p *Pipeline) Close() error {
	var errs []error
	for _, c := range p.closers {
		errs = append(errs, c())
	}
	p.closers = nil
	return errors.Join(errs...)
}
