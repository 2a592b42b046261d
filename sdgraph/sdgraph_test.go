package sdgraph

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/diffute/diffute/checkpoint"
	"github.com/diffute/diffute/internal/fixtures"
	og "github.com/diffute/diffute/onnxgraph"
	"github.com/diffute/diffute/safetensors"
)

func fixtureCheckpoints(t *testing.T) string {
	t.Helper()
	return fixtures.Path(t, "checkpoints")
}

// TestParamsAreTheCheckpointsTensors: for every component of the reference
// checkpoints saved by diffusers/transformers, the weights the builder asks for
// are exactly the tensors the checkpoint stores (names and shapes); the VAE's
// are split between its decoder and encoder graphs.
func TestParamsAreTheCheckpointsTensors(t *testing.T) {
	t.Parallel()
	dir := fixtureCheckpoints(t)
	for _, model := range []string{"sd15", "sd21v", "sdxl"} {
		for _, c := range []string{"text_encoder", "text_encoder_2", "unet", "vae"} {
			cfg, err := os.ReadFile(filepath.Join(dir, model, c, "config.json"))
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			g, err := Build(c, cfg, Options{})
			if err != nil {
				t.Fatalf("%s/%s: %v", model, c, err)
			}
			if c == "vae" {
				enc, err := Build("vae_encoder", cfg, Options{})
				if err != nil {
					t.Fatalf("%s/vae_encoder: %v", model, err)
				}
				g.Params = append(g.Params, enc.Params...)
			}
			file := "diffusion_pytorch_model.safetensors"
			if strings.HasPrefix(c, "text_encoder") {
				file = "model.safetensors"
			}
			f, err := safetensors.Open(filepath.Join(dir, model, c, file))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, n := range f.Names() {
				if n == "text_model.embeddings.position_ids" {
					continue
				}
				want = append(want, n)
			}
			var got []string
			for _, p := range g.Params {
				got = append(got, p.Name)
				ti, ok := f.Tensor(p.Name)
				if ok && !slices.Equal(ti.Shape, p.Shape) {
					t.Errorf("%s/%s: %s: builder wants %v, checkpoint has %v", model, c, p.Name, p.Shape, ti.Shape)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				for _, n := range want {
					if !slices.Contains(got, n) {
						t.Errorf("%s/%s: checkpoint tensor %s unused by the builder", model, c, n)
					}
				}
				for _, n := range got {
					if !slices.Contains(want, n) {
						t.Errorf("%s/%s: builder wants %s, which the checkpoint lacks", model, c, n)
					}
				}
			}
			f.Close()
		}
	}
}

// TestUnsupportedConfigsNameTheKey: a value the builder does not implement is
// an error naming the key and the value.
func TestUnsupportedConfigsNameTheKey(t *testing.T) {
	t.Parallel()
	unet := `{"block_out_channels":[32,64],"down_block_types":["CrossAttnDownBlock2D","DownBlock2D"],"up_block_types":["UpBlock2D","CrossAttnUpBlock2D"]`
	cases := []struct {
		component, config, want string
	}{
		{"unet", unet + `,"time_cond_proj_dim":256}`, "time_cond_proj_dim = 256 is not supported"},
		{"unet", unet + `,"class_embed_type":"timestep"}`, `class_embed_type = "timestep" is not supported`},
		{"unet", unet + `,"addition_embed_type":"text_image"}`, `addition_embed_type = "text_image"`},
		{"unet", unet + `,"resnet_time_scale_shift":"scale_shift"}`, "resnet_time_scale_shift"},
		{"unet", `{"block_out_channels":[32],"down_block_types":["SimpleCrossAttnDownBlock2D"],"up_block_types":["UpBlock2D"]}`, `down_block_types[0] = "SimpleCrossAttnDownBlock2D"`},
		{"unet", unet + `,"attention_head_dim":[1,2,3]}`, "attention_head_dim has 3 values for 2 blocks"},
		{"unet", unet + `,"norm_num_groups":7}`, "norm_num_groups 7"},
		{"unet", unet + `,"transformer_layers_per_block":[[1],[2]]}`, "transformer_layers_per_block"},
		{"vae", `{"block_out_channels":[32],"up_block_types":["UpBlock2D"]}`, `up_block_types[0] = "UpBlock2D"`},
		{"vae", `{"block_out_channels":[32],"act_fn":"relu"}`, `act_fn = "relu"`},
		{"text_encoder", `{"hidden_size":8,"intermediate_size":16,"num_attention_heads":3,"num_hidden_layers":1}`, "not a multiple of num_attention_heads"},
		{"text_encoder", `{"hidden_size":8,"intermediate_size":16,"num_attention_heads":2,"num_hidden_layers":1,"hidden_act":"relu"}`, `hidden_act: activation "relu"`},
		{"text_encoder", `{"hidden_size":8,"intermediate_size":16,"num_attention_heads":2,"num_hidden_layers":1,"max_position_embeddings":512}`, "max_position_embeddings = 512"},
		{"text_encoder", `{"hidden_size":0}`, "hidden_size = 0"},
		{"unet", `[`, "config.json"},
	}
	for _, c := range cases {
		_, err := Build(c.component, []byte(c.config), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: err = %v, want it to contain %q", c.component, c.config, err, c.want)
		}
	}
}

// TestFusedAttentionOption checks that Options.FusedAttention decides the
// attention operator of every component that attends, and nothing else: the
// weights asked for are the same either way.
func TestFusedAttentionOption(t *testing.T) {
	t.Parallel()
	dir := fixtureCheckpoints(t)
	for _, c := range []string{"text_encoder", "unet", "vae"} {
		cfg, err := os.ReadFile(filepath.Join(dir, "sd15", c, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := Build(c, cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		fused, err := Build(c, cfg, Options{FusedAttention: true})
		if err != nil {
			t.Fatal(err)
		}
		const op = "MultiHeadAttention"
		if bytes.Contains(plain.Model, []byte(op)) || !bytes.Contains(fused.Model, []byte(op)) {
			t.Errorf("%s: %s in the unfused graph %t, in the fused one %t", c, op,
				bytes.Contains(plain.Model, []byte(op)), bytes.Contains(fused.Model, []byte(op)))
		}
		if !reflect.DeepEqual(plain.Params, fused.Params) {
			t.Errorf("%s: the fused graph asks for other weights", c)
		}
	}
}

// TestFloat16AndCUDAKernels builds SD 1.5's and SDXL's full-size UNets and
// VAE decoders: in float16 every weight the UNet reads is float16 and its
// inputs and outputs stay float32; with CUDAKernels every group norm is the
// CUDA provider's GroupNorm (its scale and bias read as float32) and every
// GEGLU a BiasSplitGelu, with the same weights asked for.
func TestFloat16AndCUDAKernels(t *testing.T) {
	t.Parallel()
	count := func(g *Graph, op string) int { return bytes.Count(g.Model, []byte(op)) }
	for _, f := range []checkpoint.Family{checkpoint.SD1, checkpoint.SDXL} {
		for _, c := range []string{"unet", "vae"} {
			cfg, err := fs.ReadFile(checkpoint.BaseLayout(f), c+"/config.json")
			if err != nil {
				t.Fatal(err)
			}
			plain, err := Build(c, cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			half, err := Build(c, cfg, Options{Float16: true})
			if err != nil {
				t.Fatal(err)
			}
			kernels, err := Build(c, cfg, Options{Float16: true, CUDAKernels: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range half.Params {
				if p.DType != og.Float16 {
					t.Fatalf("%s/%s float16: %s is %s", f, c, p.Name, p.DType)
				}
			}
			if 2*half.ParamBytes() != plain.ParamBytes() {
				t.Errorf("%s/%s: float16 weights take %d bytes, float32 %d", f, c, half.ParamBytes(), plain.ParamBytes())
			}
			for _, io := range append(append([]IO(nil), half.Inputs...), half.Outputs...) {
				if io.DType != og.Float {
					t.Errorf("%s/%s float16: %s is %s, want float32 at the graph's edge", f, c, io.Name, io.DType)
				}
			}
			norms := count(plain, "InstanceNormalization")
			if norms == 0 || count(kernels, "GroupNorm") != norms || count(kernels, "InstanceNormalization") != 0 {
				t.Errorf("%s/%s: %d group norms, %d GroupNorm kernels, %d left as InstanceNormalization", f, c,
					norms, count(kernels, "GroupNorm"), count(kernels, "InstanceNormalization"))
			}
			var float32s int
			for i, p := range kernels.Params {
				if p.Name != plain.Params[i].Name || !slices.Equal(p.Shape, plain.Params[i].Shape) {
					t.Fatalf("%s/%s: the CUDA-kernel graph asks for %s %v, the plain one %s %v", f, c, p.Name, p.Shape, plain.Params[i].Name, plain.Params[i].Shape)
				}
				if p.DType == og.Float {
					float32s++
				}
			}
			if float32s != norms { // one scale and one bias per norm, each named twice (node and initializer)
				t.Errorf("%s/%s: %d float32 weights for %d GroupNorm nodes", f, c, float32s, norms/2)
			}
			if c == "unet" {
				gelus := count(plain, "Erf") // GEGLU's exact GELU, the UNet's only Erf
				if gelus == 0 || count(kernels, "BiasSplitGelu") != gelus {
					t.Errorf("%s/unet: %d GEGLUs, %d BiasSplitGelu", f, gelus, count(kernels, "BiasSplitGelu"))
				}
			}
		}
	}
}
