package hub

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/diffute/diffute/checkpoint"
)

// Format is a pipeline layout a repository can ship.
type Format string

// The layouts Pull downloads.
const (
	// FormatAuto takes the diffusers safetensors layout when the revision has
	// one (a smaller fp16 download, and every fine-tune has it) and the ONNX
	// layout otherwise; from the cache it accepts either complete layout.
	FormatAuto Format = ""
	// FormatSafetensors is the diffusers layout: model_index.json, scheduler/,
	// tokenizer[_2]/, and per component its config.json and one weights variant.
	FormatSafetensors Format = "safetensors"
	// FormatONNX is the diffusers/Optimum ONNX export.
	FormatONNX Format = "onnx"
)

// ParseFormat reads a --format value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatAuto, FormatSafetensors, FormatONNX:
		return Format(s), nil
	case "auto":
		return FormatAuto, nil
	}
	return "", fmt.Errorf("hub: unknown format %q: want safetensors or onnx", s)
}

// PullOptions choose what Pull downloads.
type PullOptions struct {
	// Revision is a branch, tag or commit; empty means "main".
	Revision string
	// Format is the layout to download; FormatAuto prefers safetensors.
	Format Format
}

// diffusersComponents are the model folders the pipeline loads, when
// model_index.json names them; the safety checker and feature extractor some
// repositories ship are not loaded and not downloaded.
var diffusersComponents = []string{"unet", "vae", "text_encoder", "text_encoder_2"}

// diffusersTokenizers are the tokenizer folders, when model_index.json names them.
var diffusersTokenizers = []string{"tokenizer", "tokenizer_2"}

// namedComponents lists which of names model_index.json declares (a key with a
// non-null value).
func namedComponents(modelIndex []byte, names []string) ([]string, error) {
	var index map[string]json.RawMessage
	if err := json.Unmarshal(modelIndex, &index); err != nil {
		return nil, fmt.Errorf("model_index.json: %w", err)
	}
	var out []string
	for _, n := range names {
		if v, ok := index[n]; ok && string(v) != "null" && string(v) != "[null, null]" && string(v) != "[null,null]" {
			out = append(out, n)
		}
	}
	return out, nil
}

// hasDiffusersLayout reports whether a file set looks like a diffusers
// pipeline with safetensors weights: model_index.json, unet/ and vae/ configs
// and UNet weights.
func hasDiffusersLayout(present func(string) bool) bool {
	if !present("model_index.json") || !present("unet/config.json") || !present("vae/config.json") {
		return false
	}
	_, _, ok := checkpoint.ChooseWeights(func(n string) bool { return present("unet/" + n) }, "")
	return ok
}

// diffusersPlan is what Pull downloads for the diffusers layout, given the
// revision's files and its model_index.json: the small files, each component's
// weight file, and each sharded index (whose shards are known only once the
// index is read). missing names what the revision lacks.
type diffusersPlan struct {
	files   []string
	indexes []string
	missing []string
}

func planDiffusers(present func(string) bool, modelIndex []byte) (*diffusersPlan, error) {
	p := &diffusersPlan{}
	need := func(f string) {
		if present(f) {
			p.files = append(p.files, f)
		} else {
			p.missing = append(p.missing, f)
		}
	}
	comps, err := namedComponents(modelIndex, diffusersComponents)
	if err != nil {
		return nil, err
	}
	toks, _ := namedComponents(modelIndex, diffusersTokenizers)
	p.files = append(p.files, "model_index.json")
	need("scheduler/scheduler_config.json")
	for _, tok := range toks {
		need(tok + "/vocab.json")
		need(tok + "/merges.txt")
		for _, f := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
			if present(tok + "/" + f) {
				p.files = append(p.files, tok+"/"+f)
			}
		}
	}
	for _, req := range []string{"unet", "vae"} {
		if !contains(comps, req) {
			p.missing = append(p.missing, req+" (in model_index.json)")
		}
	}
	for _, comp := range comps {
		need(comp + "/config.json")
		file, index, ok := checkpoint.ChooseWeights(func(n string) bool { return present(comp + "/" + n) }, "")
		switch {
		case !ok:
			p.missing = append(p.missing, comp+"/diffusion_pytorch_model.safetensors or "+comp+"/model.safetensors")
		case file != "":
			p.files = append(p.files, comp+"/"+file)
		default:
			p.indexes = append(p.indexes, comp+"/"+index)
		}
	}
	return p, nil
}

// shardsOf reads a downloaded sharded index and returns its shards' repository paths.
func shardsOf(snapshot, index string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(snapshot, filepath.FromSlash(index)))
	if err != nil {
		return nil, fmt.Errorf("hub: %w", err)
	}
	names, err := checkpoint.ShardNames(b)
	if err != nil {
		return nil, fmt.Errorf("hub: %s: %w", index, err)
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = path.Join(path.Dir(index), n)
	}
	return out, nil
}

// missingDiffusers lists what a snapshot folder lacks for the diffusers layout
// (nil when complete): any one weights variant per component will do.
func missingDiffusers(dir string) []string {
	present := func(f string) bool {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))) // follows the link into blobs/
		return err == nil && fi.Mode().IsRegular()
	}
	b, err := os.ReadFile(filepath.Join(dir, "model_index.json"))
	if err != nil {
		return []string{"model_index.json"}
	}
	p, err := planDiffusers(present, b)
	if err != nil {
		return []string{"a readable model_index.json"}
	}
	missing := p.missing
	for _, idx := range p.indexes {
		shards, err := shardsOf(dir, idx)
		if err != nil {
			missing = append(missing, idx+" (unreadable)")
			continue
		}
		for _, s := range shards {
			if !present(s) {
				missing = append(missing, s)
			}
		}
	}
	sort.Strings(missing)
	return missing
}

// missingFor lists what dir lacks for format; for FormatAuto, a complete
// layout of either kind is enough, and the layout model_index.json points to
// (vae/ for diffusers, vae_decoder/ for ONNX) is the one reported.
func missingFor(dir string, format Format) []string {
	switch format {
	case FormatONNX:
		return missingLocally(dir)
	case FormatSafetensors:
		return missingDiffusers(dir)
	}
	onnx := missingLocally(dir)
	if len(onnx) == 0 {
		return nil
	}
	diff := missingDiffusers(dir)
	if len(diff) == 0 {
		return nil
	}
	if b, err := os.ReadFile(filepath.Join(dir, "model_index.json")); err == nil {
		if named, _ := namedComponents(b, []string{"vae"}); len(named) > 0 {
			return diff
		}
	}
	return onnx
}
