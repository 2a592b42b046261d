package checkpoint

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// checkShapes compares a few structural shapes of a single file's weights with
// the configs its layout gives, so a checkpoint the layout does not describe
// (an inpainting UNet's 9 input channels, a text encoder of another width) is
// refused with the key and both values named, before any graph is built.
func checkShapes(path string, layout fs.FS, comps map[string]Weights) error {
	type check struct {
		comp, weight string
		dim          int    // axis of the weight's shape
		key          string // config key
		index        int    // element of a list-valued key, or -1
	}
	checks := []check{
		{UNet, "conv_in.weight", 1, "in_channels", -1},
		{UNet, "conv_in.weight", 0, "block_out_channels", 0},
		{UNet, "conv_out.weight", 0, "out_channels", -1},
		{UNet, "add_embedding.linear_1.weight", 1, "projection_class_embeddings_input_dim", -1},
		{VAE, "decoder.conv_in.weight", 1, "latent_channels", -1},
		{VAE, "encoder.conv_in.weight", 0, "block_out_channels", 0},
		{TextEncoder, "text_model.embeddings.token_embedding.weight", 1, "hidden_size", -1},
		{TextEncoder, "text_model.embeddings.token_embedding.weight", 0, "vocab_size", -1},
		{TextEncoder2, "text_model.embeddings.token_embedding.weight", 1, "hidden_size", -1},
		{TextEncoder2, "text_projection.weight", 0, "projection_dim", -1},
	}
	configs := map[string]map[string]json.RawMessage{}
	for comp := range comps {
		b, err := fs.ReadFile(layout, comp+"/config.json")
		if err != nil {
			return fmt.Errorf("checkpoint: %s: the layout has no %s/config.json", path, comp)
		}
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("checkpoint: %s/config.json: %w", comp, err)
		}
		configs[comp] = cfg
	}
	for _, c := range checks {
		ws, ok := comps[c.comp]
		if !ok {
			continue
		}
		w, ok := ws.Lookup(c.weight)
		if !ok || len(w.Shape) <= c.dim {
			continue
		}
		want, ok := configInt(configs[c.comp][c.key], c.index)
		if !ok {
			continue
		}
		if got := w.Shape[c.dim]; got != want {
			key := c.key
			if c.index >= 0 {
				key += "[" + strconv.Itoa(c.index) + "]"
			}
			return fmt.Errorf("checkpoint: %s: %s %s has shape %v, but %s/config.json says %s %d%s",
				path, c.comp, c.weight, w.Shape, c.comp, key, want, hint(c.comp, c.key, got))
		}
	}
	// The text encoders' depth, which diffusers trims for SD 2.x.
	for _, comp := range []string{TextEncoder, TextEncoder2} {
		ws, ok := comps[comp]
		if !ok {
			continue
		}
		want, ok := configInt(configs[comp]["num_hidden_layers"], -1)
		if !ok {
			continue
		}
		layers := map[string]bool{}
		for _, n := range ws.Names() {
			if rest, ok := strings.CutPrefix(n, "text_model.encoder.layers."); ok {
				layers[strings.SplitN(rest, ".", 2)[0]] = true
			}
		}
		if int64(len(layers)) != want {
			return fmt.Errorf("checkpoint: %s: %s has %d layers, but %s/config.json says num_hidden_layers %d", path, comp, len(layers), comp, want)
		}
	}
	return nil
}

// configInt reads an integer config value, or element i of a list.
func configInt(raw json.RawMessage, i int) (int64, bool) {
	if raw == nil {
		return 0, false
	}
	if i >= 0 {
		var list []int64
		if json.Unmarshal(raw, &list) != nil || i >= len(list) {
			return 0, false
		}
		return list[i], true
	}
	var v int64
	if json.Unmarshal(raw, &v) != nil {
		return 0, false
	}
	return v, true
}

func hint(comp, key string, got int64) string {
	switch {
	case comp == UNet && key == "in_channels" && slices.Contains([]int64{5, 8, 9}, got):
		return " (an inpainting, depth or instruct-pix2pix UNet, which text-to-image does not run)"
	}
	return ""
}
