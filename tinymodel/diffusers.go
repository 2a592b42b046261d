package tinymodel

import (
	"bytes"
	"fmt"
	"hash/fnv"

	"github.com/diffute/diffute/safetensors"
	"github.com/diffute/diffute/sdgraph"
)

// Architecture of the tiny diffusers-layout models: the real diffusers and
// transformers block classes at tiny widths (2 channels at full resolution).
// Attention runs only at the lowest UNet level (1/8 of the latent's side) and
// the VAE's mid block has none
// (mid_block_add_attention false): attention over every latent pixel of a 1024²
// image would cost seconds a step.
func tinyConfigs(name string, vocabSize int) map[string]map[string]any {
	xl := name != NameSD
	text := func(arch string, hidden, layers, projection int, act string) map[string]any {
		return map[string]any{
			"architectures":           []any{arch},
			"model_type":              "clip_text_model",
			"hidden_size":             hidden,
			"intermediate_size":       2 * hidden,
			"num_attention_heads":     2,
			"num_hidden_layers":       layers,
			"projection_dim":          projection,
			"max_position_embeddings": maxLength,
			"vocab_size":              vocabSize,
			"hidden_act":              act,
			"layer_norm_eps":          1e-5,
			"bos_token_id":            0,
			"eos_token_id":            2,
			"pad_token_id":            1,
			"torch_dtype":             "float32",
		}
	}
	unet := map[string]any{
		"_class_name":                  "UNet2DConditionModel",
		"_diffusers_version":           "0.27.2",
		"act_fn":                       "silu",
		"in_channels":                  latentChannels,
		"out_channels":                 latentChannels,
		"block_out_channels":           []any{2, 4, 4, 8},
		"down_block_types":             []any{"DownBlock2D", "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"},
		"up_block_types":               []any{"CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"},
		"mid_block_type":               "UNetMidBlock2DCrossAttn",
		"layers_per_block":             1,
		"attention_head_dim":           []any{1, 1, 1, 2},
		"transformer_layers_per_block": 1,
		"cross_attention_dim":          TextHidden,
		"norm_num_groups":              2,
		"norm_eps":                     1e-5,
		"use_linear_projection":        false,
		"flip_sin_to_cos":              true,
		"freq_shift":                   0,
		"sample_size":                  64,
	}
	vae := map[string]any{
		"_class_name":             "AutoencoderKL",
		"_diffusers_version":      "0.27.2",
		"act_fn":                  "silu",
		"in_channels":             3,
		"out_channels":            3,
		"latent_channels":         latentChannels,
		"block_out_channels":      []any{2, 2, 4, 4},
		"down_block_types":        []any{"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"},
		"up_block_types":          []any{"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"},
		"layers_per_block":        0,
		"norm_num_groups":         2,
		"mid_block_add_attention": false,
		"sample_size":             512,
		"scaling_factor":          0.18215,
	}
	cfgs := map[string]map[string]any{
		"text_encoder": text("CLIPTextModel", TextHidden, 2, TextHidden, "quick_gelu"),
		"unet":         unet,
		"vae":          vae,
	}
	if xl {
		unet["transformer_layers_per_block"] = []any{1, 1, 1, 2}
		unet["cross_attention_dim"] = TextHidden + TextHidden2
		unet["use_linear_projection"] = true
		unet["addition_embed_type"] = "text_time"
		unet["addition_time_embed_dim"] = 8
		unet["projection_class_embeddings_input_dim"] = PooledHidden + 6*8
		unet["sample_size"] = 128
		vae["sample_size"] = 1024
		vae["scaling_factor"] = 0.13025
		cfgs["text_encoder_2"] = text("CLIPTextModelWithProjection", TextHidden2, 2, PooledHidden, "gelu")
	}
	return cfgs
}

// diffusersIndex is model_index.json of the diffusers pipeline class.
func diffusersIndex(name string) map[string]any {
	idx := map[string]any{
		"_diffusers_version": "0.27.2",
		"scheduler":          []any{"diffusers", schedulerConfig(name)["_class_name"]},
		"text_encoder":       []any{"transformers", "CLIPTextModel"},
		"tokenizer":          []any{"transformers", "CLIPTokenizer"},
		"unet":               []any{"diffusers", "UNet2DConditionModel"},
		"vae":                []any{"diffusers", "AutoencoderKL"},
	}
	if name == NameSD {
		idx["_class_name"] = "StableDiffusionPipeline"
		idx["feature_extractor"] = []any{nil, nil}
		idx["safety_checker"] = []any{nil, nil}
		idx["requires_safety_checker"] = false
	} else {
		idx["_class_name"] = "StableDiffusionXLPipeline"
		idx["force_zeros_for_empty_prompt"] = true
		idx["add_watermarker"] = nil
		idx["text_encoder_2"] = []any{"transformers", "CLIPTextModelWithProjection"}
		idx["tokenizer_2"] = []any{"transformers", "CLIPTokenizer"}
	}
	return idx
}

// ComponentParams builds the graph of a diffusers component from its config and
// returns the weights it needs: what a checkpoint of that architecture stores.
func ComponentParams(component string, config []byte) ([]sdgraph.Param, error) {
	g, err := sdgraph.Build(component, config, sdgraph.Options{})
	if err != nil {
		return nil, fmt.Errorf("tinymodel: %s: %w", component, err)
	}
	return g.Params, nil
}

// WeightsFile is the diffusers file name of a component's weights.
func WeightsFile(component string, dtype safetensors.DType) string {
	base := "diffusion_pytorch_model"
	if component == "text_encoder" || component == "text_encoder_2" {
		base = "model"
	}
	if dtype == safetensors.F16 {
		return base + ".fp16.safetensors"
	}
	return base + ".safetensors"
}

// Seed is the weights' seed of a model name.
func Seed(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// diffusersFiles is the diffusers-layout folder of a tiny model.
func diffusersFiles(name string, opts WriteOptions) (map[string][]byte, error) {
	vocab := buildVocabulary()
	files := map[string][]byte{}
	tok, err := vocab.tokenizerFiles(endOfText)
	if err != nil {
		return nil, err
	}
	for k, v := range tok {
		files["tokenizer/"+k] = v
	}
	if name != NameSD {
		tok2, err := vocab.tokenizerFiles("!")
		if err != nil {
			return nil, err
		}
		for k, v := range tok2 {
			files["tokenizer_2/"+k] = v
		}
	}
	jsons := map[string]any{
		"model_index.json":                diffusersIndex(name),
		"scheduler/scheduler_config.json": schedulerConfig(name),
	}
	dtype := safetensors.F32
	if opts.FP16 {
		dtype = safetensors.F16
	}
	for component, cfg := range tinyConfigs(name, len(vocab.tokens)) {
		raw, err := jsonFile(cfg)
		if err != nil {
			return nil, err
		}
		files[component+"/config.json"] = raw
		params, err := ComponentParams(component, raw)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := safetensors.Write(&buf, map[string]string{"format": "pt"}, RandomWeights(params, Seed(name+"/"+component), dtype)); err != nil {
			return nil, fmt.Errorf("tinymodel: %s: %w", component, err)
		}
		files[component+"/"+WeightsFile(component, dtype)] = buf.Bytes()
	}
	for p, v := range jsons {
		b, err := jsonFile(v)
		if err != nil {
			return nil, fmt.Errorf("%w (writing %s)", err, p)
		}
		files[p] = b
	}
	files["README.md"] = modelCard(name, opts)
	return files, nil
}
