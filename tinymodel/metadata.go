package tinymodel

import (
	"fmt"
	"strings"
)

// metadataFiles returns the JSON and Markdown files of the folder: the pipeline
// index, the scheduler config, each component's config.json and the model card.
func metadataFiles(name string, vocabSize int, opts WriteOptions) (map[string][]byte, error) {
	xl := name != NameSD
	onnxComponent := []any{"diffusers", "OnnxRuntimeModel"}
	index := map[string]any{
		"_diffusers_version": "0.30.0",
		"scheduler":          []any{"diffusers", schedulerConfig(name)["_class_name"]},
		"text_encoder":       onnxComponent,
		"tokenizer":          []any{"transformers", "CLIPTokenizer"},
		"unet":               onnxComponent,
		"vae_decoder":        onnxComponent,
		"vae_encoder":        onnxComponent,
	}
	if xl {
		index["_class_name"] = "ORTStableDiffusionXLPipeline"
		index["force_zeros_for_empty_prompt"] = true
		index["text_encoder_2"] = onnxComponent
		index["tokenizer_2"] = []any{"transformers", "CLIPTokenizer"}
	} else {
		index["_class_name"] = "OnnxStableDiffusionPipeline"
		index["feature_extractor"] = []any{nil, nil}
		index["safety_checker"] = []any{nil, nil}
		index["requires_safety_checker"] = false
	}

	sampleSize, scaling, unetSample := 512, 0.18215, 64
	if xl {
		sampleSize, scaling, unetSample = 1024, 0.13025, 128
	}
	textEncoder := func(arch string, hidden, layers, projection int) map[string]any {
		return map[string]any{
			"architectures":           []any{arch},
			"model_type":              "clip_text_model",
			"hidden_size":             hidden,
			"num_hidden_layers":       layers,
			"projection_dim":          projection,
			"max_position_embeddings": maxLength,
			"vocab_size":              vocabSize,
			"bos_token_id":            vocabSize - 2,
			"eos_token_id":            vocabSize - 1,
			"pad_token_id":            1,
		}
	}
	unetCfg := map[string]any{
		"_class_name":         "UNet2DConditionModel",
		"in_channels":         latentChannels,
		"out_channels":        latentChannels,
		"sample_size":         unetSample,
		"cross_attention_dim": TextHidden,
	}
	if xl {
		unetCfg["cross_attention_dim"] = TextHidden + TextHidden2
		unetCfg["addition_embed_type"] = "text_time"
		unetCfg["projection_class_embeddings_input_dim"] = PooledHidden + 6
	}
	vae := map[string]any{
		"_class_name":     "AutoencoderKL",
		"in_channels":     3,
		"out_channels":    3,
		"latent_channels": latentChannels,
		"sample_size":     sampleSize,
		"scaling_factor":  scaling,
	}

	jsons := map[string]any{
		"model_index.json":                index,
		"scheduler/scheduler_config.json": schedulerConfig(name),
		"text_encoder/config.json":        textEncoder("CLIPTextModel", TextHidden, 12, TextHidden),
		"unet/config.json":                unetCfg,
		"vae_decoder/config.json":         vae,
		"vae_encoder/config.json":         vae,
	}
	if xl {
		jsons["text_encoder_2/config.json"] = textEncoder("CLIPTextModelWithProjection", TextHidden2, 32, PooledHidden)
	}
	files := map[string][]byte{"README.md": modelCard(name, opts)}
	for p, v := range jsons {
		b, err := jsonFile(v)
		if err != nil {
			return nil, fmt.Errorf("%w (writing %s)", err, p)
		}
		files[p] = b
	}
	return files, nil
}

// schedulerConfig returns the scheduler of the real model each tiny one stands
// for: SD 1.5's PNDM, SDXL base's Euler and SDXL Turbo's Euler ancestral with
// trailing spacing.
func schedulerConfig(name string) map[string]any {
	c := map[string]any{
		"_diffusers_version":  "0.30.0",
		"beta_schedule":       "scaled_linear",
		"beta_start":          0.00085,
		"beta_end":            0.012,
		"num_train_timesteps": 1000,
		"prediction_type":     "epsilon",
		"set_alpha_to_one":    false,
		"skip_prk_steps":      true,
		"clip_sample":         false,
		"trained_betas":       nil,
		"steps_offset":        1,
		"timestep_spacing":    "leading",
	}
	switch name {
	case NameSD:
		c["_class_name"] = "PNDMScheduler"
	case NameSDXL:
		c["_class_name"] = "EulerDiscreteScheduler"
		c["interpolation_type"] = "linear"
		c["use_karras_sigmas"] = false
		c["sample_max_value"] = 1.0
	case NameSDXLTurbo:
		c["_class_name"] = "EulerAncestralDiscreteScheduler"
		c["steps_offset"] = 0
		c["timestep_spacing"] = "trailing"
		c["sample_max_value"] = 1.0
	}
	return c
}

func modelCard(name string, opts WriteOptions) []byte {
	layout := "a real\n" + "ONNX export of %s, so Diffute's tests and offline demo can run the real\n" +
		"pipeline on ONNX Runtime without downloading weights. Its weights are seeded pseudo-random numbers,\n" +
		"its networks a few small layers: no training, no knowledge of images.\n\n"
	if !opts.ONNX {
		layout = "a diffusers\n" + "checkpoint of %s: the real block classes (CLIPTextModel, UNet2DConditionModel,\n" +
			"AutoencoderKL) at tiny widths, weights as safetensors. Diffute builds its graphs like any checkpoint's,\n" +
			"so its tests and offline demo run the real pipeline without downloading weights. Its weights are seeded\n" +
			"pseudo-random numbers: no training, no knowledge of images.\n\n"
	}
	stands := map[string]string{
		NameSD:        "Stable Diffusion 1.5 (OnnxStableDiffusionPipeline layout)",
		NameSDXL:      "Stable Diffusion XL base 1.0 (Optimum ORTStableDiffusionXLPipeline layout)",
		NameSDXLTurbo: "SDXL Turbo (Optimum ORTStableDiffusionXLPipeline layout, 1-step trailing schedule)",
	}[name]
	precision := "float32"
	if opts.FP16 {
		precision = "float16 inputs and outputs"
	}
	if !opts.ONNX {
		stands = map[string]string{
			NameSD:        "Stable Diffusion 1.5 (StableDiffusionPipeline)",
			NameSDXL:      "Stable Diffusion XL base 1.0 (StableDiffusionXLPipeline)",
			NameSDXLTurbo: "SDXL Turbo (StableDiffusionXLPipeline, 1-step trailing schedule)",
		}[name]
		if opts.FP16 {
			precision = "float16 weights (*.fp16.safetensors)"
		}
	}
	var b strings.Builder
	tag := "diffusers"
	if opts.ONNX {
		tag = "onnx"
	}
	fmt.Fprintf(&b, "---\nlibrary_name: diffute\ntags:\n- test\n- %s\n---\n\n# %s\n\n", tag, name)
	fmt.Fprintf(&b, "**This is a tiny random-weight test model. It makes noise, not pictures.**\n\n")
	fmt.Fprintf(&b, "It has the folder layout, file names and configuration keys of "+layout, stands)
	fmt.Fprintf(&b, "- Precision: %s.\n- Tokenizer: byte-level BPE, %d merges learned from a short embedded text.\n", precision, len(buildVocabulary().merges))
	fmt.Fprintf(&b, "- Regenerate with `diffute models make-tiny`; the same version of Diffute writes identical bytes.\n\n%s\n", marker)
	return []byte(b.String())
}
