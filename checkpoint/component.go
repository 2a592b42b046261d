package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/diffute/diffute/safetensors"
)

// Component is one diffusers component folder (unet/, vae/, text_encoder/,
// text_encoder_2/): its config.json and one variant of its weights.
type Component struct {
	Dir       string
	Config    []byte // config.json
	Weights   Weights
	Files     []string // weight files used (the shards, for a sharded checkpoint)
	Index     string   // the *.safetensors.index.json, when sharded
	Precision safetensors.DType
	Bytes     int64 // bytes of weight data

	set *safetensors.Set
}

// ComponentOptions chooses among a folder's weight files.
type ComponentOptions struct {
	// Variant is "" to prefer the fp16 variant when the folder has one and the
	// plain file otherwise, "fp32" to force the plain file, or any other variant
	// name ("fp16", "bf16", …) to require that variant.
	Variant string
}

// weightBases are the file stems diffusers (models) and transformers (text
// encoders) save weights under.
var weightBases = []string{"diffusion_pytorch_model", "model"}

// OpenComponent opens the component folder dir.
func OpenComponent(dir string, opts ComponentOptions) (*Component, error) {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checkpoint: component folder %s does not exist", dir)
		}
		return nil, fmt.Errorf("checkpoint: component folder %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("checkpoint: component folder %s is not a directory", dir)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checkpoint: component folder %s has no config.json", dir)
		}
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	files, index, err := pickWeights(dir, opts.Variant)
	if err != nil {
		return nil, err
	}
	var set *safetensors.Set
	if index != "" {
		set, err = safetensors.OpenIndex(index)
	} else {
		set, err = safetensors.OpenFiles(files...)
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if index != "" {
		files = files[:0]
		for _, f := range set.Files() {
			files = append(files, f.Path())
		}
	}
	ws := newWeightMap()
	for _, name := range set.Names() {
		if isBuffer(name) {
			continue
		}
		f, t, _ := set.Lookup(name)
		origin := f.Path() + ": " + name
		if !isWeightDType(t.DType) {
			set.Close()
			return nil, dtypeError(origin, t.DType)
		}
		if err := ws.add(Weight{Name: name, DType: t.DType, Shape: t.Shape, Data: f.Bytes(t), Origin: origin, File: f.Path(), Offset: f.DataOffset() + t.Begin}); err != nil {
			set.Close()
			return nil, err
		}
	}
	if len(ws.byName) == 0 {
		set.Close()
		return nil, fmt.Errorf("checkpoint: component folder %s: its weight files hold no tensors", dir)
	}
	prec, n := summarize(ws)
	return &Component{Dir: dir, Config: cfg, Weights: ws.finish(), Files: files, Index: index, Precision: prec, Bytes: n, set: set}, nil
}

// pickWeights chooses the weight file (or sharded index) of dir for variant.
func pickWeights(dir, variant string) (files []string, index string, err error) {
	file, idx, ok := ChooseWeights(func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && st.Mode().IsRegular()
	}, variant)
	switch {
	case ok && file != "":
		return []string{filepath.Join(dir, file)}, "", nil
	case ok:
		return nil, filepath.Join(dir, idx), nil
	}
	want := "diffusion_pytorch_model.safetensors or model.safetensors (or a sharded *.safetensors.index.json)"
	if variant != "" && variant != "fp32" {
		want = fmt.Sprintf("a %s variant (diffusion_pytorch_model.%s.safetensors or model.%s.safetensors, or its sharded index)", variant, variant, variant)
	}
	return nil, "", fmt.Errorf("checkpoint: component folder %s has no weights: want %s", dir, want)
}

// ChooseWeights picks the weights of one component folder among the files
// has reports (names relative to the folder), as OpenComponent does and the
// Hub client does before downloading: for variant "" the fp16 variant when
// there is one, else the plain file; "fp32" only the plain file; any other
// variant only that variant. Within a variant a single file wins over a
// sharded index, and diffusers' stem over transformers'. It returns the file
// or the index, or ok false.
func ChooseWeights(has func(name string) bool, variant string) (file, index string, ok bool) {
	var order []string
	switch variant {
	case "":
		order = []string{"fp16", ""}
	case "fp32":
		order = []string{""}
	default:
		order = []string{variant}
	}
	for _, v := range order {
		for _, stem := range weightBases {
			single, idx := WeightFileNames(stem, v)
			if has(single) {
				return single, "", true
			}
			for _, i := range idx {
				if has(i) {
					return "", i, true
				}
			}
		}
	}
	return "", "", false
}

// ShardNames reads a sharded checkpoint's index (its JSON bytes) and returns
// the shard file names it refers to, sorted; each must be a plain file name.
func ShardNames(index []byte) ([]string, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(index, &idx); err != nil {
		return nil, err
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("empty weight_map")
	}
	var shards []string
	for _, sh := range idx.WeightMap {
		if sh == "" || sh == "." || sh == ".." || strings.ContainsAny(sh, `/\`) {
			return nil, fmt.Errorf("shard %q must be a file name beside the index", sh)
		}
		if !slices.Contains(shards, sh) {
			shards = append(shards, sh)
		}
	}
	slices.Sort(shards)
	return shards, nil
}

// WeightFileNames are the names diffusers and transformers give the weights of
// a component saved under stem ("diffusion_pytorch_model" or "model") with
// variant ("" for none): the single file, and the sharded index as both
// libraries spell it (the variant before ".json", as save_pretrained writes it,
// and the older spelling with the variant before ".safetensors").
func WeightFileNames(stem, variant string) (single string, indexes []string) {
	if variant == "" {
		return stem + ".safetensors", []string{stem + ".safetensors.index.json"}
	}
	return stem + "." + variant + ".safetensors", []string{
		stem + ".safetensors.index." + variant + ".json",
		stem + "." + variant + ".safetensors.index.json",
	}
}

// Close unmaps the weight files; the Weights' data are invalid afterwards.
func (c *Component) Close() error {
	if c.set == nil {
		return nil
	}
	err := c.set.Close()
	c.set = nil
	return err
}
