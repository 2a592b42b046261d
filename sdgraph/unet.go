package sdgraph

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	og "github.com/diffute/diffute/onnxgraph"
)

// UNetConfig is a UNet2DConditionModel config.json. Keys the builder does not
// implement are kept to be checked, so an unusual model fails with the key named.
type UNetConfig struct {
	InChannels                  int64    `json:"in_channels"`
	OutChannels                 int64    `json:"out_channels"`
	BlockOutChannels            []int64  `json:"block_out_channels"`
	DownBlockTypes              []string `json:"down_block_types"`
	UpBlockTypes                []string `json:"up_block_types"`
	MidBlockType                *string  `json:"mid_block_type"`
	LayersPerBlock              perBlock `json:"layers_per_block"`
	AttentionHeadDim            perBlock `json:"attention_head_dim"`
	NumAttentionHeads           perBlock `json:"num_attention_heads"`
	TransformerLayersPerBlock   perBlock `json:"transformer_layers_per_block"`
	CrossAttentionDim           perBlock `json:"cross_attention_dim"`
	UseLinearProjection         bool     `json:"use_linear_projection"`
	UpcastAttention             bool     `json:"upcast_attention"`
	AdditionEmbedType           *string  `json:"addition_embed_type"`
	AdditionTimeEmbedDim        int64    `json:"addition_time_embed_dim"`
	ProjectionClassEmbeddingsIn int64    `json:"projection_class_embeddings_input_dim"`
	FlipSinToCos                *bool    `json:"flip_sin_to_cos"`
	FreqShift                   float64  `json:"freq_shift"`
	NormNumGroups               int64    `json:"norm_num_groups"`
	NormEps                     float64  `json:"norm_eps"`
	ActFn                       string   `json:"act_fn"`
	ConvInKernel                int64    `json:"conv_in_kernel"`
	ConvOutKernel               int64    `json:"conv_out_kernel"`
	DownsamplePadding           int64    `json:"downsample_padding"`
	MidBlockScaleFactor         float64  `json:"mid_block_scale_factor"`
	ResnetOutScaleFactor        float64  `json:"resnet_out_scale_factor"`
	SampleSize                  int64    `json:"sample_size"`
}

// keys whose non-default values the builder refuses, with the default it implements.
var unetMustBe = map[string]string{
	"class_embed_type": "null", "num_class_embeds": "null", "time_cond_proj_dim": "null",
	"encoder_hid_dim": "null", "encoder_hid_dim_type": "null", "time_embedding_dim": "null",
	"time_embedding_act_fn": "null", "timestep_post_act": "null", "cross_attention_norm": "null",
	"time_embedding_type": `"positional"`, "resnet_time_scale_shift": `"default"`,
	"attention_type": `"default"`, "only_cross_attention": "false", "dual_cross_attention": "false",
	"center_input_sample": "false", "resnet_skip_time_act": "false", "class_embeddings_concat": "false",
	"reverse_transformer_layers_per_block": "null", "mid_block_only_cross_attention": "null",
}

// ParseUNetConfig reads unet/config.json with diffusers' defaults for absent keys.
func ParseUNetConfig(data []byte) (UNetConfig, error) {
	c := UNetConfig{InChannels: 4, OutChannels: 4, NormNumGroups: 32, NormEps: 1e-5, ActFn: "silu",
		ConvInKernel: 3, ConvOutKernel: 3, DownsamplePadding: 1, MidBlockScaleFactor: 1, ResnetOutScaleFactor: 1,
		AdditionTimeEmbedDim: 0}
	c.LayersPerBlock = perBlock{set: true, one: 2}
	c.AttentionHeadDim = perBlock{set: true, one: 8}
	c.TransformerLayersPerBlock = perBlock{set: true, one: 1}
	c.CrossAttentionDim = perBlock{set: true, one: 1280}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return c, fmt.Errorf("unet config.json: %w", err)
	}
	for _, key := range []string{"layers_per_block", "attention_head_dim", "num_attention_heads", "transformer_layers_per_block", "cross_attention_dim"} {
		var p perBlock
		if v, ok := all[key]; ok {
			if err := p.UnmarshalJSON(v); err != nil {
				return c, fmt.Errorf("unet config.json: %s: %w", key, err)
			}
		}
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("unet config.json: %w", err)
	}
	for key, want := range unetMustBe {
		if v, ok := all[key]; ok && string(compactJSON(v)) != want {
			return c, fmt.Errorf("unet config.json: %s = %s is not supported (only %s)", key, compactJSON(v), want)
		}
	}
	if len(c.BlockOutChannels) == 0 || len(c.DownBlockTypes) != len(c.BlockOutChannels) || len(c.UpBlockTypes) != len(c.BlockOutChannels) {
		return c, fmt.Errorf("unet config.json: block_out_channels, down_block_types and up_block_types must have the same length")
	}
	if c.CrossAttentionDim.list != nil {
		return c, fmt.Errorf("unet config.json: cross_attention_dim as a list is not supported")
	}
	if c.LayersPerBlock.list != nil {
		return c, fmt.Errorf("unet config.json: layers_per_block as a list is not supported")
	}
	if c.ActFn != "silu" && c.ActFn != "swish" {
		return c, fmt.Errorf("unet config.json: act_fn = %q is not supported (only silu)", c.ActFn)
	}
	if c.ConvInKernel%2 == 0 || c.ConvOutKernel%2 == 0 {
		return c, fmt.Errorf("unet config.json: conv_in_kernel/conv_out_kernel must be odd")
	}
	if c.MidBlockScaleFactor != 1 || c.ResnetOutScaleFactor != 1 {
		return c, fmt.Errorf("unet config.json: mid_block_scale_factor and resnet_out_scale_factor other than 1 are not supported")
	}
	if c.MidBlockType != nil && *c.MidBlockType != "UNetMidBlock2DCrossAttn" {
		return c, fmt.Errorf("unet config.json: mid_block_type = %q is not supported (only UNetMidBlock2DCrossAttn)", *c.MidBlockType)
	}
	if c.AdditionEmbedType != nil && *c.AdditionEmbedType != "text_time" {
		return c, fmt.Errorf("unet config.json: addition_embed_type = %q is not supported (only null or text_time)", *c.AdditionEmbedType)
	}
	for i, t := range c.DownBlockTypes {
		if t != "DownBlock2D" && t != "CrossAttnDownBlock2D" {
			return c, fmt.Errorf("unet config.json: down_block_types[%d] = %q is not supported", i, t)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != "UpBlock2D" && t != "CrossAttnUpBlock2D" {
			return c, fmt.Errorf("unet config.json: up_block_types[%d] = %q is not supported", i, t)
		}
	}
	return c, nil
}

func compactJSON(v json.RawMessage) []byte {
	var x any
	if json.Unmarshal(v, &x) != nil {
		return v
	}
	b, _ := json.Marshal(x)
	return b
}

// SDXL reports whether the UNet takes SDXL's text_embeds and time_ids.
func (c UNetConfig) SDXL() bool {
	return c.AdditionEmbedType != nil && *c.AdditionEmbedType == "text_time"
}

// ContextDim is the width of encoder_hidden_states.
func (c UNetConfig) ContextDim() int64 { return c.CrossAttentionDim.one }

// PooledDim is the width of text_embeds (SDXL): the add embedding's input minus
// six time ids of addition_time_embed_dim each.
func (c UNetConfig) PooledDim() int64 {
	return c.ProjectionClassEmbeddingsIn - 6*c.AdditionTimeEmbedDim
}

type unet struct {
	*builder
	c      UNetConfig
	groups int64
	eps    float32
	temb   string // silu(time embedding), [B or 1, 4·C0]
	tembCh int64
	ctx    string
}

// UNet builds UNet2DConditionModel: sample [B, C, h, w], timestep float32 [1],
// encoder_hidden_states [B, 77, ctx] (and for SDXL text_embeds [B, P], time_ids
// [B, 6]) → out_sample [B, C, h, w].
func UNet(c UNetConfig, o Options) (*Graph, error) {
	n := len(c.BlockOutChannels)
	heads := c.NumAttentionHeads
	if !heads.set {
		heads = c.AttentionHeadDim // diffusers' naming: attention_head_dim holds the head count
	}
	headsPer, err := heads.expand("attention_head_dim", n)
	if err != nil {
		return nil, fmt.Errorf("unet config.json: %w", err)
	}
	layersPer, err := c.TransformerLayersPerBlock.expand("transformer_layers_per_block", n)
	if err != nil {
		return nil, fmt.Errorf("unet config.json: %w", err)
	}
	u := &unet{builder: newBuilder("unet", o), c: c, groups: c.NormNumGroups, eps: float32(c.NormEps)}
	u.upcast = c.UpcastAttention && o.Float16
	sample := u.compute(u.input("sample", og.Float, -1, c.InChannels, -1, -1))
	ts := u.input("timestep", og.Float, 1)
	u.ctx = u.compute(u.input("encoder_hidden_states", og.Float, -1, TokenLength, c.ContextDim()))

	c0 := c.BlockOutChannels[0]
	flip := c.FlipSinToCos == nil || *c.FlipSinToCos
	u.tembCh = 4 * c0
	tproj := u.compute(u.sinusoid(u.op("Unsqueeze", []string{ts, u.ints(1)}), c0, flip, c.FreqShift))
	emb := u.timestepEmbedding(tproj, "time_embedding", c0, u.tembCh)
	if c.SDXL() {
		if c.AdditionTimeEmbedDim <= 0 || c.PooledDim() <= 0 {
			return nil, fmt.Errorf("unet config.json: addition_embed_type text_time needs addition_time_embed_dim and projection_class_embeddings_input_dim (got %d, %d)", c.AdditionTimeEmbedDim, c.ProjectionClassEmbeddingsIn)
		}
		textEmbeds := u.compute(u.input("text_embeds", og.Float, -1, c.PooledDim()))
		timeIDs := u.input("time_ids", og.Float, -1, 6)
		flat := u.op("Reshape", []string{timeIDs, u.ints(-1, 1)})
		tproj := u.sinusoid(flat, c.AdditionTimeEmbedDim, flip, c.FreqShift)
		tproj = u.compute(u.op("Reshape", []string{tproj, u.ints(-1, 6*c.AdditionTimeEmbedDim)}))
		add := u.op("Concat", []string{textEmbeds, tproj}, og.AttrInt("axis", 1))
		emb = u.op("Add", []string{emb, u.timestepEmbedding(add, "add_embedding", c.ProjectionClassEmbeddingsIn, u.tembCh)})
	}
	u.temb = u.silu(emb)

	x := u.conv(sample, "conv_in", c.InChannels, c0, c.ConvInKernel, 1, c.ConvInKernel/2)
	skips := []skip{{x, c0}}
	ch := c0
	layers := c.LayersPerBlock.one
	for i, typ := range c.DownBlockTypes {
		p := "down_blocks." + strconv.Itoa(i)
		out := c.BlockOutChannels[i]
		for j := range layers {
			x = u.resnet(x, p+".resnets."+strconv.FormatInt(j, 10), ch, out)
			ch = out
			if typ == "CrossAttnDownBlock2D" {
				x = u.transformer2D(x, p+".attentions."+strconv.FormatInt(j, 10), ch, headsPer[i], layersPer[i])
			}
			skips = append(skips, skip{x, ch})
		}
		if i < n-1 {
			x = u.conv(x, p+".downsamplers.0.conv", ch, ch, 3, 2, c.DownsamplePadding)
			skips = append(skips, skip{x, ch})
		}
	}

	x = u.resnet(x, "mid_block.resnets.0", ch, ch)
	x = u.transformer2D(x, "mid_block.attentions.0", ch, headsPer[n-1], layersPer[n-1])
	x = u.resnet(x, "mid_block.resnets.1", ch, ch)

	for i, typ := range c.UpBlockTypes {
		p := "up_blocks." + strconv.Itoa(i)
		r := n - 1 - i
		out := c.BlockOutChannels[r]
		for j := range layers + 1 {
			s := skips[len(skips)-1]
			skips = skips[:len(skips)-1]
			x = u.op("Concat", []string{x, s.value}, og.AttrInt("axis", 1))
			x = u.resnet(x, p+".resnets."+strconv.FormatInt(j, 10), ch+s.ch, out)
			ch = out
			if typ == "CrossAttnUpBlock2D" {
				x = u.transformer2D(x, p+".attentions."+strconv.FormatInt(j, 10), ch, headsPer[r], layersPer[r])
			}
		}
		if i < n-1 {
			// Upsample to the next skip's size, not blindly 2x: a latent side
			// that is not a multiple of 2^(levels-1) rounds up on the way down
			// (diffusers' forward_upsample_size).
			next := skips[len(skips)-1].value
			size := u.op("Concat", []string{
				u.op("Slice", []string{u.op("Shape", []string{x}), u.ints(0), u.ints(2)}),
				u.op("Slice", []string{u.op("Shape", []string{next}), u.ints(2), u.ints(4)}),
			}, og.AttrInt("axis", 0))
			x = u.op("Resize", []string{x, "", "", size}, og.AttrString("mode", "nearest"), og.AttrString("coordinate_transformation_mode", "asymmetric"), og.AttrString("nearest_mode", "floor"))
			x = u.conv(x, p+".upsamplers.0.conv", ch, ch, 3, 1, 1)
		}
	}
	x = u.groupNorm(x, "conv_norm_out", ch, u.groups, u.eps, true)
	x = u.conv(x, "conv_out", ch, c.OutChannels, c.ConvOutKernel, 1, c.ConvOutKernel/2)
	u.output(x, "out_sample", -1, c.OutChannels, -1, -1)
	return u.finish()
}

type skip struct {
	value string
	ch    int64
}

// sinusoid is diffusers' get_timestep_embedding of t [N, 1] → [N, dim], in
// float32 whatever the graph computes in (as diffusers does), with the
// frequencies computed in float32 as torch does.
func (u *unet) sinusoid(t string, dim int64, flip bool, shift float64) string {
	half := dim / 2
	freqs := make([]float32, half)
	for i := range freqs {
		e := float32(-math.Log(10000)) * float32(i)
		e = e / float32(float64(half)-shift)
		freqs[i] = float32(math.Exp(float64(e)))
	}
	arg := u.op("Mul", []string{t, u.floatsOf(og.Float, []int64{1, half}, freqs)})
	sin, cos := u.op("Sin", []string{arg}), u.op("Cos", []string{arg})
	parts := []string{sin, cos}
	if flip {
		parts = []string{cos, sin}
	}
	return u.op("Concat", parts, og.AttrInt("axis", 1))
}

// timestepEmbedding is diffusers' TimestepEmbedding: linear_1, SiLU, linear_2.
func (u *unet) timestepEmbedding(x, prefix string, in, out int64) string {
	h := u.silu(u.linear(x, prefix+".linear_1", in, out, true))
	return u.linear(h, prefix+".linear_2", out, out, true)
}

// resnet is diffusers' ResnetBlock2D with the time embedding added after conv1.
func (u *unet) resnet(x, prefix string, in, out int64) string {
	h := u.groupNorm(x, prefix+".norm1", in, u.groups, u.eps, true)
	h = u.conv(h, prefix+".conv1", in, out, 3, 1, 1)
	t := u.linear(u.temb, prefix+".time_emb_proj", u.tembCh, out, true)
	h = u.op("Add", []string{h, u.op("Unsqueeze", []string{t, u.ints(2, 3)})})
	h = u.groupNorm(h, prefix+".norm2", out, u.groups, u.eps, true)
	h = u.conv(h, prefix+".conv2", out, out, 3, 1, 1)
	if in != out {
		x = u.conv(x, prefix+".conv_shortcut", in, out, 1, 1, 0)
	}
	return u.op("Add", []string{x, h})
}

// transformer2D is diffusers' Transformer2DModel (continuous input): GroupNorm,
// proj_in (1×1 conv or linear), BasicTransformerBlocks, proj_out, residual.
func (u *unet) transformer2D(x, prefix string, ch, heads, depth int64) string {
	if heads <= 0 || ch%heads != 0 {
		u.failf("unet config.json: %s: %d channels do not split into %d attention heads", prefix, ch, heads)
		return x
	}
	shape := u.op("Shape", []string{x})
	h := u.groupNorm(x, prefix+".norm", ch, u.groups, 1e-6, false)
	toTokens := func(v string) string { // [B, C, H, W] → [B, HW, C]
		r := u.op("Reshape", []string{v, u.ints(0, ch, -1)})
		return u.op("Transpose", []string{r}, og.AttrInts("perm", 0, 2, 1))
	}
	if u.c.UseLinearProjection {
		h = u.linear(toTokens(h), prefix+".proj_in", ch, ch, true)
	} else {
		h = toTokens(u.conv(h, prefix+".proj_in", ch, ch, 1, 1, 0))
	}
	for d := range depth {
		h = u.basicTransformerBlock(h, prefix+".transformer_blocks."+strconv.FormatInt(d, 10), ch, heads)
	}
	fromTokens := func(v string) string { // [B, HW, C] → [B, C, H, W]
		t := u.op("Transpose", []string{v}, og.AttrInts("perm", 0, 2, 1))
		return u.op("Reshape", []string{t, shape})
	}
	if u.c.UseLinearProjection {
		h = fromTokens(u.linear(h, prefix+".proj_out", ch, ch, true))
	} else {
		h = u.conv(fromTokens(h), prefix+".proj_out", ch, ch, 1, 1, 0)
	}
	return u.op("Add", []string{h, x})
}

// basicTransformerBlock is self-attention, cross-attention on the text and a
// GEGLU feed-forward, each pre-normed with a residual.
func (u *unet) basicTransformerBlock(x, prefix string, dim, heads int64) string {
	ctxDim := u.c.ContextDim()
	h := u.layerNorm(x, prefix+".norm1", dim, 1e-5)
	x = u.op("Add", []string{x, u.attn(h, h, prefix+".attn1", dim, dim, heads)})
	h = u.layerNorm(x, prefix+".norm2", dim, 1e-5)
	x = u.op("Add", []string{x, u.attn(h, u.ctx, prefix+".attn2", dim, ctxDim, heads)})
	h = u.layerNorm(x, prefix+".norm3", dim, 1e-5)
	inner := 4 * dim
	g := u.geglu(h, prefix+".ff.net.0", dim, inner)
	return u.op("Add", []string{x, u.linear(g, prefix+".ff.net.2", inner, dim, true)})
}

// geglu is diffusers' GEGLU: a projection to 2·inner, split in halves a and b,
// a·gelu(b). With CUDAKernels, and at the widths BiasSplitGelu's kernel takes
// (SD 1.5's and SDXL's), the bias, the split and the GELU are that one kernel.
func (u *unet) geglu(x, prefix string, dim, inner int64) string {
	if u.opts.CUDAKernels && slices.Contains([]int64{2560, 5120, 10240}, 2*inner) {
		proj := u.linear(x, prefix+".proj", dim, 2*inner, false)
		out := u.tmp()
		u.g.NodeIn(og.ContribDomain, "BiasSplitGelu", []string{proj, u.weight(prefix+".proj.bias", 2*inner)}, []string{out})
		return out
	}
	proj := u.linear(x, prefix+".proj", dim, 2*inner, true)
	parts := []string{u.tmp(), u.tmp()}
	u.g.Node("Split", []string{proj, u.ints(inner, inner)}, parts, og.AttrInt("axis", -1))
	return u.op("Mul", []string{parts[0], u.gelu(parts[1])})
}

// attn is diffusers' Attention: to_q on x, to_k/to_v on ctx (no bias), to_out.0.
func (u *unet) attn(x, ctx, prefix string, dim, ctxDim, heads int64) string {
	q := u.linear(x, prefix+".to_q", dim, dim, false)
	k := u.linear(ctx, prefix+".to_k", ctxDim, dim, false)
	v := u.linear(ctx, prefix+".to_v", ctxDim, dim, false)
	a := u.attention(q, k, v, heads, dim/heads, false, false)
	return u.linear(a, prefix+".to_out.0", dim, dim, true)
}
