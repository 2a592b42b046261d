package sdgraph

import (
	"encoding/json"
	"fmt"
	"strconv"

	og "github.com/diffute/diffute/onnxgraph"
)

// VAEConfig is an AutoencoderKL config.json.
type VAEConfig struct {
	InChannels       int64    `json:"in_channels"`
	OutChannels      int64    `json:"out_channels"`
	LatentChannels   int64    `json:"latent_channels"`
	BlockOutChannels []int64  `json:"block_out_channels"`
	UpBlockTypes     []string `json:"up_block_types"`
	DownBlockTypes   []string `json:"down_block_types"`
	LayersPerBlock   int64    `json:"layers_per_block"`
	NormNumGroups    int64    `json:"norm_num_groups"`
	ActFn            string   `json:"act_fn"`
	ScalingFactor    float64  `json:"scaling_factor"`
	ForceUpcast      *bool    `json:"force_upcast"`
	MidBlockAddAttn  *bool    `json:"mid_block_add_attention"`
	UseQuantConv     *bool    `json:"use_quant_conv"`
	UsePostQuantConv *bool    `json:"use_post_quant_conv"`
}

// ParseVAEConfig reads vae/config.json with diffusers' defaults.
func ParseVAEConfig(data []byte) (VAEConfig, error) {
	c := VAEConfig{InChannels: 3, OutChannels: 3, LatentChannels: 4, LayersPerBlock: 1, NormNumGroups: 32, ActFn: "silu", ScalingFactor: 0.18215}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("vae config.json: %w", err)
	}
	if len(c.BlockOutChannels) == 0 {
		return c, fmt.Errorf("vae config.json: block_out_channels is missing")
	}
	if c.ActFn != "silu" && c.ActFn != "swish" {
		return c, fmt.Errorf("vae config.json: act_fn = %q is not supported (only silu)", c.ActFn)
	}
	for i, t := range c.UpBlockTypes {
		if t != "UpDecoderBlock2D" {
			return c, fmt.Errorf("vae config.json: up_block_types[%d] = %q is not supported (only UpDecoderBlock2D)", i, t)
		}
	}
	if len(c.UpBlockTypes) != 0 && len(c.UpBlockTypes) != len(c.BlockOutChannels) {
		return c, fmt.Errorf("vae config.json: up_block_types has %d entries for %d block_out_channels", len(c.UpBlockTypes), len(c.BlockOutChannels))
	}
	if c.UseQuantConv != nil && !*c.UseQuantConv || c.UsePostQuantConv != nil && !*c.UsePostQuantConv {
		return c, fmt.Errorf("vae config.json: use_quant_conv/use_post_quant_conv = false is not supported")
	}
	return c, nil
}

// VAEDecoder builds AutoencoderKL's decode: latent_sample [B, latent, h, w]
// (already divided by the scaling factor) → post_quant_conv → Decoder → sample
// [B, 3, 8h, 8w] in [-1, 1] (before clamping).
func VAEDecoder(c VAEConfig, o Options) (*Graph, error) {
	b := newBuilder("vae_decoder", o)
	const eps = 1e-6
	g := c.NormNumGroups
	n := len(c.BlockOutChannels)
	x := b.compute(b.input("latent_sample", og.Float, -1, c.LatentChannels, -1, -1))
	x = b.conv(x, "post_quant_conv", c.LatentChannels, c.LatentChannels, 1, 1, 0)
	ch := c.BlockOutChannels[n-1]
	x = b.conv(x, "decoder.conv_in", c.LatentChannels, ch, 3, 1, 1)
	x = vaeResnet(b, x, "decoder.mid_block.resnets.0", ch, ch, g, eps)
	if c.MidBlockAddAttn == nil || *c.MidBlockAddAttn {
		x = vaeAttention(b, x, "decoder.mid_block.attentions.0", ch, g, eps)
	}
	x = vaeResnet(b, x, "decoder.mid_block.resnets.1", ch, ch, g, eps)
	for i := range n {
		p := "decoder.up_blocks." + strconv.Itoa(i)
		out := c.BlockOutChannels[n-1-i]
		for j := range c.LayersPerBlock + 1 {
			x = vaeResnet(b, x, p+".resnets."+strconv.FormatInt(j, 10), ch, out, g, eps)
			ch = out
		}
		if i < n-1 {
			x = b.op("Resize", []string{x, "", b.floats([]int64{4}, []float32{1, 1, 2, 2})}, og.AttrString("mode", "nearest"),
				og.AttrString("coordinate_transformation_mode", "asymmetric"), og.AttrString("nearest_mode", "floor"))
			x = b.conv(x, p+".upsamplers.0.conv", ch, ch, 3, 1, 1)
		}
	}
	x = b.groupNorm(x, "decoder.conv_norm_out", ch, g, eps, true)
	x = b.conv(x, "decoder.conv_out", ch, c.OutChannels, 3, 1, 1)
	b.output(x, "sample", -1, c.OutChannels, -1, -1)
	return b.finish()
}

// vaeResnet is ResnetBlock2D without a time embedding.
func vaeResnet(b *builder, x, prefix string, in, out, groups int64, eps float32) string {
	h := b.groupNorm(x, prefix+".norm1", in, groups, eps, true)
	h = b.conv(h, prefix+".conv1", in, out, 3, 1, 1)
	h = b.groupNorm(h, prefix+".norm2", out, groups, eps, true)
	h = b.conv(h, prefix+".conv2", out, out, 3, 1, 1)
	if in != out {
		x = b.conv(x, prefix+".conv_shortcut", in, out, 1, 1, 0)
	}
	return b.op("Add", []string{x, h})
}

// vaeAttention is the mid block's single-head Attention with a group norm and
// biased projections, over the H·W positions.
func vaeAttention(b *builder, x, prefix string, ch, groups int64, eps float32) string {
	shape := b.op("Shape", []string{x})
	h := b.groupNorm(x, prefix+".group_norm", ch, groups, eps, false)
	h = b.op("Transpose", []string{b.op("Reshape", []string{h, b.ints(0, ch, -1)})}, og.AttrInts("perm", 0, 2, 1))
	q := b.linear(h, prefix+".to_q", ch, ch, true)
	k := b.linear(h, prefix+".to_k", ch, ch, true)
	v := b.linear(h, prefix+".to_v", ch, ch, true)
	a := b.attention(q, k, v, 1, ch, false, false)
	a = b.linear(a, prefix+".to_out.0", ch, ch, true)
	a = b.op("Reshape", []string{b.op("Transpose", []string{a}, og.AttrInts("perm", 0, 2, 1)), shape})
	return b.op("Add", []string{a, x})
}

// VAEEncoder builds AutoencoderKL's encode up to its latent distribution:
// sample [B, 3, H, W] in [-1, 1] → Encoder → quant_conv → latent_parameters
// [B, 2·latent, H/8, W/8], the mean then the log-variance of each latent
// channel (DiagonalGaussianDistribution's parameters; multiply a draw or the
// mean by the scaling factor for the UNet). For image-to-image.
func VAEEncoder(c VAEConfig, o Options) (*Graph, error) {
	b := newBuilder("vae_encoder", o)
	const eps = 1e-6
	g := c.NormNumGroups
	n := len(c.BlockOutChannels)
	for i, t := range c.DownBlockTypes {
		if t != "DownEncoderBlock2D" {
			return nil, fmt.Errorf("vae config.json: down_block_types[%d] = %q is not supported (only DownEncoderBlock2D)", i, t)
		}
	}
	x := b.compute(b.input("sample", og.Float, -1, c.InChannels, -1, -1))
	ch := c.BlockOutChannels[0]
	x = b.conv(x, "encoder.conv_in", c.InChannels, ch, 3, 1, 1)
	for i := range n {
		p := "encoder.down_blocks." + strconv.Itoa(i)
		out := c.BlockOutChannels[i]
		for j := range c.LayersPerBlock {
			x = vaeResnet(b, x, p+".resnets."+strconv.FormatInt(j, 10), ch, out, g, eps)
			ch = out
		}
		if i < n-1 {
			// diffusers' Downsample2D with padding 0: pad right and bottom by
			// one, then a stride-2 convolution.
			x = b.op("Pad", []string{x, b.ints(0, 0, 0, 0, 0, 0, 1, 1)})
			x = b.conv(x, p+".downsamplers.0.conv", ch, ch, 3, 2, 0)
		}
	}
	x = vaeResnet(b, x, "encoder.mid_block.resnets.0", ch, ch, g, eps)
	if c.MidBlockAddAttn == nil || *c.MidBlockAddAttn {
		x = vaeAttention(b, x, "encoder.mid_block.attentions.0", ch, g, eps)
	}
	x = vaeResnet(b, x, "encoder.mid_block.resnets.1", ch, ch, g, eps)
	x = b.groupNorm(x, "encoder.conv_norm_out", ch, g, eps, true)
	x = b.conv(x, "encoder.conv_out", ch, 2*c.LatentChannels, 3, 1, 1)
	x = b.conv(x, "quant_conv", 2*c.LatentChannels, 2*c.LatentChannels, 1, 1, 0)
	b.output(x, "latent_parameters", -1, 2*c.LatentChannels, -1, -1)
	return b.finish()
}
