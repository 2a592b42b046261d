package sdgraph

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	og "github.com/diffute/diffute/onnxgraph"
)

// TextConfig is the part of a transformers CLIPTextConfig the graph uses.
type TextConfig struct {
	Architectures         []string `json:"architectures"`
	HiddenSize            int64    `json:"hidden_size"`
	IntermediateSize      int64    `json:"intermediate_size"`
	NumAttentionHeads     int64    `json:"num_attention_heads"`
	NumHiddenLayers       int64    `json:"num_hidden_layers"`
	MaxPositionEmbeddings int64    `json:"max_position_embeddings"`
	VocabSize             int64    `json:"vocab_size"`
	HiddenAct             string   `json:"hidden_act"`
	LayerNormEps          float64  `json:"layer_norm_eps"`
	ProjectionDim         int64    `json:"projection_dim"`
}

// ParseTextConfig reads a text encoder's config.json.
func ParseTextConfig(data []byte) (TextConfig, error) {
	c := TextConfig{HiddenAct: "quick_gelu", LayerNormEps: 1e-5, MaxPositionEmbeddings: 77, VocabSize: 49408}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("text encoder config.json: %w", err)
	}
	for _, kv := range []struct {
		key string
		v   int64
	}{{"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize}, {"num_attention_heads", c.NumAttentionHeads},
		{"num_hidden_layers", c.NumHiddenLayers}, {"vocab_size", c.VocabSize}} {
		if kv.v <= 0 {
			return c, fmt.Errorf("text encoder config.json: %s = %d, want a positive number", kv.key, kv.v)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return c, fmt.Errorf("text encoder config.json: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.MaxPositionEmbeddings != TokenLength {
		return c, fmt.Errorf("text encoder config.json: max_position_embeddings = %d is not supported (Stable Diffusion's text encoders use %d)", c.MaxPositionEmbeddings, TokenLength)
	}
	return c, nil
}

// WithProjection reports whether the config is a CLIPTextModelWithProjection.
func (c TextConfig) WithProjection() bool {
	for _, a := range c.Architectures {
		if a == "CLIPTextModelWithProjection" {
			return true
		}
	}
	return false
}

// TokenLength is the prompt length every Stable Diffusion text encoder takes.
const TokenLength = 77

// TextEncoder builds transformers' CLIPTextModel (or …WithProjection): input_ids
// [B, 77] int64 → last_hidden_state [B, 77, D] (after the final layer norm),
// hidden_states.L-1 and hidden_states.L (the inputs of the last layer and its
// output, as output_hidden_states numbers them), and for the projection model
// text_embeds [B, P] (the EOS token's state, at the first position of the largest
// id as transformers pools, projected).
func TextEncoder(c TextConfig, o Options) (*Graph, error) {
	b := newBuilder("text_encoder", o)
	d, heads := c.HiddenSize, c.NumAttentionHeads
	eps := float32(c.LayerNormEps)
	ids := b.input("input_ids", og.Int64, -1, TokenLength)
	tok := b.op("Gather", []string{b.weight("text_model.embeddings.token_embedding.weight", c.VocabSize, d), ids})
	// Prompts are always 77 tokens, so the position table is added whole (a
	// Gather of a weight by constant indices would be folded by the runtime,
	// which must not read a supplied weight before the session has it).
	h := b.op("Add", []string{tok, b.weight("text_model.embeddings.position_embedding.weight", TokenLength, d)})

	hidden := []string{h}
	for l := range c.NumHiddenLayers {
		p := "text_model.encoder.layers." + strconv.FormatInt(l, 10)
		x := b.layerNorm(h, p+".layer_norm1", d, eps)
		q := b.op("Mul", []string{b.linear(x, p+".self_attn.q_proj", d, d, true), b.scalar(float32(1 / math.Sqrt(float64(d/heads))))})
		k := b.linear(x, p+".self_attn.k_proj", d, d, true)
		v := b.linear(x, p+".self_attn.v_proj", d, d, true)
		a := b.attention(q, k, v, heads, d/heads, true, true)
		h = b.op("Add", []string{h, b.linear(a, p+".self_attn.out_proj", d, d, true)})
		x = b.layerNorm(h, p+".layer_norm2", d, eps)
		x = b.linear(x, p+".mlp.fc1", d, c.IntermediateSize, true)
		var err error
		if x, err = b.act(c.HiddenAct, x); err != nil {
			return nil, fmt.Errorf("text encoder config.json: hidden_act: %w", err)
		}
		h = b.op("Add", []string{h, b.linear(x, p+".mlp.fc2", c.IntermediateSize, d, true)})
		hidden = append(hidden, h)
	}
	last := b.layerNorm(h, "text_model.final_layer_norm", d, eps)
	b.output(last, "last_hidden_state", -1, TokenLength, d)
	L := c.NumHiddenLayers
	b.output(hidden[L-1], "hidden_states."+strconv.FormatInt(L-1, 10), -1, TokenLength, d)
	b.output(hidden[L], "hidden_states."+strconv.FormatInt(L, 10), -1, TokenLength, d)
	if c.WithProjection() {
		if c.ProjectionDim <= 0 {
			return nil, fmt.Errorf("text encoder config.json: projection_dim = %d, want a positive number", c.ProjectionDim)
		}
		eos := b.op("ArgMax", []string{ids}, og.AttrInt("axis", 1), og.AttrInt("keepdims", 0))
		// Row r's state at column eos[r]: gather per batch row.
		pooled := b.op("GatherND", []string{last, b.op("Unsqueeze", []string{eos, b.ints(-1)})}, og.AttrInt("batch_dims", 1))
		embeds := b.linear(pooled, "text_projection", d, c.ProjectionDim, false)
		b.output(embeds, "text_embeds", -1, c.ProjectionDim)
	}
	return b.finish()
}
