package hubtest

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// PlaceholderPipeline returns the file set of a diffusers ONNX export (SD 1.x,
// or SDXL when sdxl is true) whose model files are seeded pseudo-random bytes,
// not ONNX graphs: enough to exercise downloading, not inference. It also holds
// files a pipeline must never fetch (PyTorch safetensors, the VAE encoder, a
// README), as the real repositories do. unetSize sets the size of
// unet/model.onnx_data, the file tests cut and corrupt.
func PlaceholderPipeline(sdxl bool, unetSize int) map[string]File {
	small := func(s string) File { return File{Content: []byte(s)} }
	blob := func(seed uint64, n int) File { return File{Content: pseudoRandom(seed, n), LFS: true} }
	index := `{"_class_name": "ORTStableDiffusionPipeline", "text_encoder": ["optimum", "ORTModel"], "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["optimum", "ORTModel"], "vae_decoder": ["optimum", "ORTModel"], "scheduler": ["diffusers", "PNDMScheduler"]}`
	if sdxl {
		index = `{"_class_name": "ORTStableDiffusionXLPipeline", "text_encoder": ["optimum", "ORTModel"], "text_encoder_2": ["optimum", "ORTModel"], "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["optimum", "ORTModel"], "vae_decoder": ["optimum", "ORTModel"], "scheduler": ["diffusers", "EulerDiscreteScheduler"]}`
	}
	files := map[string]File{
		"model_index.json":                         small(index),
		"README.md":                                small("# placeholder model\nThese files are noise, not a model.\n"),
		"scheduler/scheduler_config.json":          small(`{"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}`),
		"unet/model.onnx":                          blob(1, 4<<10),
		"unet/model.onnx_data":                     blob(2, unetSize),
		"unet/config.json":                         small(`{"sample_size": 64}`),
		"unet/diffusion_pytorch_model.safetensors": blob(3, 8<<10),
		"vae_decoder/model.onnx":                   blob(4, 2<<10),
		"vae_decoder/config.json":                  small(`{"scaling_factor": 0.18215}`),
		"vae_encoder/model.onnx":                   blob(5, 2<<10),
		"text_encoder/model.onnx":                  blob(6, 3<<10),
		"text_encoder/config.json":                 small(`{"hidden_size": 32}`),
		"text_encoder/model.safetensors":           blob(7, 2<<10),
	}
	tokenizers := []string{"tokenizer"}
	if sdxl {
		files["text_encoder_2/model.onnx"] = blob(8, 3<<10)
		files["text_encoder_2/model.onnx.data"] = blob(9, 5<<10)
		files["text_encoder_2/config.json"] = small(`{"hidden_size": 64}`)
		tokenizers = append(tokenizers, "tokenizer_2")
	}
	for i, t := range tokenizers {
		files[t+"/vocab.json"] = small(`{"a</w>": 320, "<|startoftext|>": 49406, "<|endoftext|>": 49407}`)
		files[t+"/merges.txt"] = small("#version: 0.2\na b\n")
		files[t+"/tokenizer_config.json"] = small(fmt.Sprintf(`{"model_max_length": 77, "pad_token": %q}`, []string{"<|endoftext|>", "!"}[i]))
		files[t+"/special_tokens_map.json"] = small(`{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}`)
		files[t+"/tokenizer.json"] = small(`{"note": "fast tokenizer file, not needed by the ONNX pipeline"}`)
	}
	return files
}

func pseudoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, (n+7)/8*8)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n]
}
