package checkpoint

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// This file maps the original ("ldm") key layout of single-file checkpoints to
// the diffusers/transformers names, following what diffusers' own converters
// do (convert_from_ckpt.py, single_file_utils.py and the reverse scripts
// convert_diffusers_to_original_*.py), written from the rules, not a table of
// layer counts: the number of blocks, of resnets per block and of layers comes
// from the keys present.
//
// A mapping is a diffusers name plus how the bytes are read: as stored, as a
// row range of a stored tensor (q, k, v of an OpenCLIP in_proj), with a new
// shape over the same bytes (a 1x1 conv kernel as a linear weight), or
// transposed (OpenCLIP's text_projection, [hidden, proj] → [proj, hidden]).

// ldmKey is one tensor of a single-file checkpoint, with its prefix stripped.
type ldmKey struct {
	full  string // the key in the file
	local string // the key after the component prefix
}

// mapped is one diffusers tensor read from a file tensor.
type mapped struct {
	name      string
	rows      [2]int64 // when rows[1] > 0: the rows [rows[0], rows[1]) of the first axis
	shape     []int64  // when non-nil: the shape to read the bytes as (same element count)
	transpose bool     // a 2-D transpose
}

// unetMapper maps "model.diffusion_model." keys. layersPerBlock is read from
// where the first downsampler sits among input_blocks.
type unetMapper struct {
	layersPerBlock int
}

// newUNetMapper infers the block layout from the UNet's keys.
func newUNetMapper(keys []string) (*unetMapper, error) {
	maxIn, maxOut := -1, -1
	firstDown := -1
	for _, k := range keys {
		if i, rest, ok := indexAfter(k, "input_blocks."); ok {
			maxIn = max(maxIn, i)
			if strings.HasPrefix(rest, "0.op.") && (firstDown < 0 || i < firstDown) {
				firstDown = i
			}
		}
		if i, _, ok := indexAfter(k, "output_blocks."); ok {
			maxOut = max(maxOut, i)
		}
	}
	if maxIn < 1 || maxOut < 0 {
		return nil, fmt.Errorf("no input_blocks/output_blocks keys")
	}
	lpb := maxIn // one level: input_blocks 1..lpb
	if firstDown > 0 {
		lpb = firstDown - 1
	}
	if lpb < 1 || (maxOut+1)%(lpb+1) != 0 {
		return nil, fmt.Errorf("cannot tell layers_per_block: first downsampler at input_blocks.%d, %d output_blocks", firstDown, maxOut+1)
	}
	return &unetMapper{layersPerBlock: lpb}, nil
}

func (u *unetMapper) mapKey(k string) ([]mapped, bool) {
	one := func(name string) ([]mapped, bool) { return []mapped{{name: name}}, true }
	for _, r := range [][2]string{
		{"time_embed.0.", "time_embedding.linear_1."},
		{"time_embed.2.", "time_embedding.linear_2."},
		{"label_emb.0.0.", "add_embedding.linear_1."},
		{"label_emb.0.2.", "add_embedding.linear_2."},
		{"input_blocks.0.0.", "conv_in."},
		{"out.0.", "conv_norm_out."},
		{"out.2.", "conv_out."},
		{"middle_block.0.", "mid_block.resnets.0."},
		{"middle_block.1.", "mid_block.attentions.0."},
		{"middle_block.2.", "mid_block.resnets.1."},
	} {
		if rest, ok := strings.CutPrefix(k, r[0]); ok {
			if strings.HasPrefix(r[1], "mid_block.resnets.") {
				rest, ok = unetResnet(rest)
				if !ok {
					return nil, false
				}
			}
			return one(r[1] + rest)
		}
	}
	per := u.layersPerBlock + 1
	if i, rest, ok := indexAfter(k, "input_blocks."); ok && i >= 1 {
		block, layer := (i-1)/per, (i-1)%per
		j, inner, ok := splitIndex(rest)
		if !ok {
			return nil, false
		}
		switch {
		case layer < u.layersPerBlock && j == 0:
			if r, ok := unetResnet(inner); ok {
				return one(fmt.Sprintf("down_blocks.%d.resnets.%d.%s", block, layer, r))
			}
		case layer < u.layersPerBlock && j == 1:
			return one(fmt.Sprintf("down_blocks.%d.attentions.%d.%s", block, layer, inner))
		case layer == u.layersPerBlock && j == 0 && strings.HasPrefix(inner, "op."):
			return one(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", block, inner[len("op."):]))
		}
		return nil, false
	}
	if i, rest, ok := indexAfter(k, "output_blocks."); ok {
		block, layer := i/per, i%per
		j, inner, ok := splitIndex(rest)
		if !ok {
			return nil, false
		}
		switch {
		case j == 0:
			if r, ok := unetResnet(inner); ok {
				return one(fmt.Sprintf("up_blocks.%d.resnets.%d.%s", block, layer, r))
			}
		case (j == 1 || j == 2) && strings.HasPrefix(inner, "conv."):
			// The upsampler follows the resnet (.1) or the resnet and attention (.2).
			return one(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv.%s", block, inner[len("conv."):]))
		case j == 1:
			return one(fmt.Sprintf("up_blocks.%d.attentions.%d.%s", block, layer, inner))
		}
		return nil, false
	}
	return nil, false
}

// unetResnet maps the inside of an ldm ResBlock to diffusers' ResnetBlock2D.
func unetResnet(k string) (string, bool) {
	for _, r := range [][2]string{
		{"in_layers.0.", "norm1."},
		{"in_layers.2.", "conv1."},
		{"out_layers.0.", "norm2."},
		{"out_layers.3.", "conv2."},
		{"emb_layers.1.", "time_emb_proj."},
		{"skip_connection.", "conv_shortcut."},
	} {
		if rest, ok := strings.CutPrefix(k, r[0]); ok {
			return r[1] + rest, true
		}
	}
	return "", false
}

// vaeMapper maps "first_stage_model." keys. upLevels is the number of decoder
// levels: ldm counts decoder.up from the lowest resolution, diffusers counts
// up_blocks from the highest.
type vaeMapper struct {
	upLevels int
}

func newVAEMapper(keys []string) (*vaeMapper, error) {
	maxUp := -1
	for _, k := range keys {
		if i, _, ok := indexAfter(k, "decoder.up."); ok {
			maxUp = max(maxUp, i)
		}
	}
	if maxUp < 0 {
		return nil, fmt.Errorf("no decoder.up keys")
	}
	return &vaeMapper{upLevels: maxUp + 1}, nil
}

func (v *vaeMapper) mapKey(k string) ([]mapped, bool) {
	one := func(name string) ([]mapped, bool) { return []mapped{{name: name}}, true }
	if strings.HasPrefix(k, "quant_conv.") || strings.HasPrefix(k, "post_quant_conv.") {
		return one(k)
	}
	if strings.HasPrefix(k, "loss.") {
		return nil, true // the autoencoder's training loss (LPIPS, discriminator), left in some checkpoints
	}
	part, rest, ok := strings.Cut(k, ".")
	if !ok || (part != "encoder" && part != "decoder") {
		return nil, false
	}
	for _, same := range []string{"conv_in.", "conv_out."} {
		if strings.HasPrefix(rest, same) {
			return one(k)
		}
	}
	if r, ok := strings.CutPrefix(rest, "norm_out."); ok {
		return one(part + ".conv_norm_out." + r)
	}
	if r, ok := strings.CutPrefix(rest, "mid.block_1."); ok {
		return one(part + ".mid_block.resnets.0." + vaeResnet(r))
	}
	if r, ok := strings.CutPrefix(rest, "mid.block_2."); ok {
		return one(part + ".mid_block.resnets.1." + vaeResnet(r))
	}
	if r, ok := strings.CutPrefix(rest, "mid.attn_1."); ok {
		return vaeAttention(part+".mid_block.attentions.0.", r)
	}
	kind := "down"
	if part == "decoder" {
		kind = "up"
	}
	level, inner, ok := indexAfter(rest, kind+".")
	if kind == "up" {
		level = v.upLevels - 1 - level
	}
	if !ok || level < 0 {
		return nil, false
	}
	if j, r, ok := indexAfter(inner, "block."); ok {
		return one(fmt.Sprintf("%s.%s_blocks.%d.resnets.%d.%s", part, kind, level, j, vaeResnet(r)))
	}
	sampler := "downsample.conv."
	if kind == "up" {
		sampler = "upsample.conv."
	}
	if r, ok := strings.CutPrefix(inner, sampler); ok {
		return one(fmt.Sprintf("%s.%s_blocks.%d.%ssamplers.0.conv.%s", part, kind, level, kind, r))
	}
	return nil, false
}

func vaeResnet(k string) string {
	if r, ok := strings.CutPrefix(k, "nin_shortcut."); ok {
		return "conv_shortcut." + r
	}
	return k
}

// vaeAttention maps the VAE's mid-block attention; ldm stores its q, k, v and
// proj_out as 1x1 convolutions, diffusers as linear layers: the same bytes.
func vaeAttention(prefix, k string) ([]mapped, bool) {
	for _, r := range [][2]string{
		{"norm.", "group_norm."},
		{"q.", "to_q."},
		{"k.", "to_k."},
		{"v.", "to_v."},
		{"proj_out.", "to_out.0."},
		// The names before diffusers 0.14, kept by some merged checkpoints.
		{"query.", "to_q."},
		{"key.", "to_k."},
		{"value.", "to_v."},
		{"proj_attn.", "to_out.0."},
	} {
		if rest, ok := strings.CutPrefix(k, r[0]); ok {
			m := mapped{name: prefix + r[1] + rest}
			if rest == "weight" && r[0] != "norm." {
				m.shape = []int64{-1, -1} // squeezed from [C, C, 1, 1] when mapped
			}
			return []mapped{m}, true
		}
	}
	return nil, false
}

// clipMapper maps a transformers CLIPTextModel stored under a prefix (SD 1.x
// cond_stage_model.transformer., SDXL conditioner.embedders.0.transformer.):
// the names are transformers' own.
type clipMapper struct{}

func (clipMapper) mapKey(k string) ([]mapped, bool) {
	if !strings.HasPrefix(k, "text_model.") {
		// Checkpoints saved with transformers before 4.x lack the text_model level.
		k = "text_model." + k
	}
	return []mapped{{name: k}}, true
}

// openCLIPMapper maps an OpenCLIP text tower (SD 2.x cond_stage_model.model.,
// SDXL conditioner.embedders.1.model.) to CLIPTextModel[WithProjection] names.
type openCLIPMapper struct {
	hidden     int64 // width, from token_embedding
	dropLayer  int   // a resblock diffusers leaves out (SD 2.x uses the penultimate layer), or -1
	projection bool  // keep text_projection (CLIPTextModelWithProjection)
}

func newOpenCLIPMapper(keys []ldmKey, shapes map[string][]int64, sd2 bool) (*openCLIPMapper, error) {
	m := &openCLIPMapper{dropLayer: -1, projection: !sd2}
	sh, ok := shapes["token_embedding.weight"]
	if !ok || len(sh) != 2 {
		return nil, fmt.Errorf("no token_embedding.weight [vocab, width]")
	}
	m.hidden = sh[1]
	if sd2 {
		last := -1
		for _, k := range keys {
			if i, _, ok := indexAfter(k.local, "transformer.resblocks."); ok {
				last = max(last, i)
			}
		}
		m.dropLayer = last
	}
	return m, nil
}

func (o *openCLIPMapper) mapKey(k string) ([]mapped, bool) {
	one := func(name string) ([]mapped, bool) { return []mapped{{name: name}}, true }
	switch k {
	case "token_embedding.weight":
		return one("text_model.embeddings.token_embedding.weight")
	case "positional_embedding":
		return one("text_model.embeddings.position_embedding.weight")
	case "ln_final.weight", "ln_final.bias":
		return one("text_model.final_layer_norm." + strings.TrimPrefix(k, "ln_final."))
	case "text_projection":
		if !o.projection {
			return nil, true // CLIPTextModel has no projection: dropped, as diffusers does
		}
		return []mapped{{name: "text_projection.weight", transpose: true}}, true
	case "logit_scale", "attn_mask":
		return nil, true // training-only
	}
	layer, rest, ok := indexAfter(k, "transformer.resblocks.")
	if !ok {
		return nil, false
	}
	if layer == o.dropLayer {
		return nil, true
	}
	p := fmt.Sprintf("text_model.encoder.layers.%d.", layer)
	switch rest {
	case "attn.in_proj_weight", "attn.in_proj_bias":
		suffix := "weight"
		if rest == "attn.in_proj_bias" {
			suffix = "bias"
		}
		d := o.hidden
		out := make([]mapped, 3)
		for i, qkv := range []string{"q", "k", "v"} {
			out[i] = mapped{name: p + "self_attn." + qkv + "_proj." + suffix, rows: [2]int64{int64(i) * d, int64(i+1) * d}}
		}
		return out, true
	}
	for _, r := range [][2]string{
		{"ln_1.", "layer_norm1."},
		{"ln_2.", "layer_norm2."},
		{"mlp.c_fc.", "mlp.fc1."},
		{"mlp.c_proj.", "mlp.fc2."},
		{"attn.out_proj.", "self_attn.out_proj."},
	} {
		if r2, ok := strings.CutPrefix(rest, r[0]); ok {
			return one(p + r[1] + r2)
		}
	}
	return nil, false
}

// indexAfter parses "<prefix><n>.<rest>" and returns n and rest.
func indexAfter(k, prefix string) (int, string, bool) {
	rest, ok := strings.CutPrefix(k, prefix)
	if !ok {
		return 0, "", false
	}
	return splitIndex(rest)
}

// splitIndex parses "<n>.<rest>".
func splitIndex(s string) (int, string, bool) {
	num, rest, ok := strings.Cut(s, ".")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 {
		return 0, "", false
	}
	return n, rest, true
}

// sortedKeys lists the local keys, sorted, for the mappers that infer layouts.
func sortedKeys(keys []ldmKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.local
	}
	sort.Strings(out)
	return out
}
