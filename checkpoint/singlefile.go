package checkpoint

import (
	"fmt"
	"sort"
	"strings"

	"github.com/diffute/diffute/safetensors"
)

// Family is a Stable Diffusion model family, as told from a checkpoint's keys.
type Family string

// The families a single-file checkpoint can be.
const (
	SD1  Family = "sd1"
	SD2  Family = "sd2"
	SDXL Family = "sdxl"
)

// Component names, as diffusers names the folders.
const (
	UNet         = "unet"
	VAE          = "vae"
	TextEncoder  = "text_encoder"
	TextEncoder2 = "text_encoder_2"
)

// The key prefixes of the original checkpoints.
const (
	ldmUNet     = "model.diffusion_model."
	ldmVAE      = "first_stage_model."
	ldmCLIP     = "cond_stage_model.transformer."        // SD 1.x: transformers CLIPTextModel
	ldmOpenCLIP = "cond_stage_model.model."              // SD 2.x: OpenCLIP ViT-H
	ldmXLCLIP   = "conditioner.embedders.0.transformer." // SDXL: CLIP ViT-L
	ldmXLBigG   = "conditioner.embedders.1.model."       // SDXL: OpenCLIP bigG
	ldmRefinerG = "conditioner.embedders.0.model."       // SDXL refiner: OpenCLIP bigG only
)

// SingleFile is an original "ldm" single-file checkpoint (AUTOMATIC1111/ComfyUI),
// mapped to diffusers names.
type SingleFile struct {
	Path       string
	Family     Family
	Components map[string]Weights // "unet", "vae", "text_encoder", "text_encoder_2"
	Precision  safetensors.DType  // of most weights (by bytes)
	Bytes      int64              // bytes of the mapped weights
	// PredictionType is what the file's own metadata says the UNet predicts
	// ("epsilon" or "v_prediction"), or "" when it says nothing; then the base
	// layout's scheduler applies (SD 2.x: v_prediction, as the 768 model and
	// diffusers' from_single_file assume; the 512-base model is epsilon and has
	// the same keys, so only metadata can tell them apart).
	PredictionType string

	file *safetensors.File
}

// OpenSingleFile maps path and its tensors to diffusers names. The family is
// told from the keys: SD 1.x has cond_stage_model.transformer.*, SD 2.x
// cond_stage_model.model.* (OpenCLIP ViT-H), SDXL base
// conditioner.embedders.0.transformer.* and conditioner.embedders.1.model.*.
// Keys outside the four components (EMA copies, the training noise schedule)
// are ignored; a key inside one that has no diffusers name is an error.
func OpenSingleFile(path string) (*SingleFile, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	s, err := mapSingleFile(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// Close unmaps the file; the Weights' data are invalid afterwards.
func (s *SingleFile) Close() error {
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}

// DetectFamily tells a checkpoint's family from its tensor names.
func DetectFamily(path string, names []string) (Family, error) {
	has := func(prefix string) bool {
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				return true
			}
		}
		return false
	}
	unet := has(ldmUNet)
	switch {
	case unet && has(ldmXLCLIP) && has(ldmXLBigG):
		return SDXL, nil
	case has(ldmRefinerG):
		return "", fmt.Errorf("checkpoint: %s: an SDXL refiner (conditioner.embedders.0.model.* without a CLIP ViT-L encoder): only SDXL base checkpoints are supported", path)
	case unet && has(ldmCLIP):
		return SD1, nil
	case unet && has(ldmOpenCLIP):
		return SD2, nil
	}
	return "", fmt.Errorf("checkpoint: %s: not an SD 1.x, SD 2.x or SDXL base checkpoint: found %s", path, describeKeys(names))
}

// describeKeys summarises a key set by its two-level prefixes, most common first.
func describeKeys(names []string) string {
	if len(names) == 0 {
		return "no tensors"
	}
	count := map[string]int{}
	for _, n := range names {
		parts := strings.SplitN(n, ".", 3)
		p := parts[0]
		if len(parts) > 2 {
			p += "." + parts[1]
		}
		count[p+".*"]++
	}
	prefixes := make([]string, 0, len(count))
	for p := range count {
		prefixes = append(prefixes, p)
	}
	sort.Slice(prefixes, func(i, j int) bool {
		if count[prefixes[i]] != count[prefixes[j]] {
			return count[prefixes[i]] > count[prefixes[j]]
		}
		return prefixes[i] < prefixes[j]
	})
	var b strings.Builder
	for i, p := range prefixes {
		if i == 5 {
			fmt.Fprintf(&b, ", … (%d more prefixes)", len(prefixes)-5)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%d)", p, count[p])
	}
	return fmt.Sprintf("%d tensors under %s", len(names), b.String())
}

// keyMapper maps one component's local keys; ok is false for a key with no
// diffusers name, an empty result drops a key diffusers does not load.
type keyMapper interface {
	mapKey(local string) (out []mapped, ok bool)
}

func mapSingleFile(path string, f *safetensors.File) (*SingleFile, error) {
	family, err := DetectFamily(path, f.Names())
	if err != nil {
		return nil, err
	}
	prefixes := map[string]string{UNet: ldmUNet, VAE: ldmVAE}
	switch family {
	case SD1:
		prefixes[TextEncoder] = ldmCLIP
	case SD2:
		prefixes[TextEncoder] = ldmOpenCLIP
	case SDXL:
		prefixes[TextEncoder] = ldmXLCLIP
		prefixes[TextEncoder2] = ldmXLBigG
	}
	s := &SingleFile{Path: path, Family: family, Components: map[string]Weights{}, PredictionType: predictionType(f.Metadata()), file: f}
	all := newWeightMap() // for the summary
	for _, comp := range []string{UNet, VAE, TextEncoder, TextEncoder2} {
		prefix, ok := prefixes[comp]
		if !ok {
			continue
		}
		var keys []ldmKey
		shapes := map[string][]int64{}
		for _, n := range f.Names() {
			if local, ok := strings.CutPrefix(n, prefix); ok {
				keys = append(keys, ldmKey{full: n, local: local})
				t, _ := f.Tensor(n)
				shapes[local] = t.Shape
			}
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("checkpoint: %s: a %s checkpoint without its %s (no %s* keys)", path, family, comp, prefix)
		}
		var m keyMapper
		switch {
		case comp == UNet:
			m, err = newUNetMapper(sortedKeys(keys))
		case comp == VAE:
			m, err = newVAEMapper(sortedKeys(keys))
		case prefix == ldmOpenCLIP || prefix == ldmXLBigG:
			m, err = newOpenCLIPMapper(keys, shapes, family == SD2)
		default:
			m = clipMapper{}
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %s: %s (%s*): %w", path, comp, prefix, err)
		}
		ws := newWeightMap()
		for _, k := range keys {
			if isBuffer(k.local) {
				continue
			}
			outs, ok := m.mapKey(k.local)
			if !ok {
				return nil, fmt.Errorf("checkpoint: %s: tensor %q: no %s name for this key in a %s checkpoint", path, k.full, comp, family)
			}
			t, _ := f.Tensor(k.full)
			origin := path + ": " + k.full
			if len(outs) > 0 && !isWeightDType(t.DType) {
				return nil, dtypeError(origin, t.DType)
			}
			for _, o := range outs {
				w, err := materialize(o, t, f.Bytes(t), origin)
				if err != nil {
					return nil, err
				}
				if !o.transpose { // a view: where it lies in the file
					w.File, w.Offset = path, f.DataOffset()+t.Begin+w.Offset
				}
				if err := ws.add(w); err != nil {
					return nil, err
				}
				all.byName[comp+"/"+w.Name] = w
			}
		}
		s.Components[comp] = ws.finish()
	}
	s.Precision, s.Bytes = summarize(all)
	return s, nil
}

// materialize reads one mapped tensor from the stored one.
func materialize(o mapped, t safetensors.Tensor, data []byte, origin string) (Weight, error) {
	w := Weight{Name: o.name, DType: t.DType, Shape: t.Shape, Data: data, Origin: origin}
	size := int64(t.DType.Size())
	switch {
	case o.rows[1] > 0:
		if len(t.Shape) == 0 || t.Shape[0] != 3*(o.rows[1]-o.rows[0]) {
			return Weight{}, fmt.Errorf("checkpoint: %s: shape %v is not a q/k/v concatenation of width %d", origin, t.Shape, o.rows[1]-o.rows[0])
		}
		row := size
		for _, d := range t.Shape[1:] {
			row *= d
		}
		w.Data = data[o.rows[0]*row : o.rows[1]*row : o.rows[1]*row]
		w.Offset = o.rows[0] * row // within the tensor; the caller adds where the tensor starts
		w.Shape = append([]int64{o.rows[1] - o.rows[0]}, t.Shape[1:]...)
	case o.shape != nil: // a 1x1 convolution read as a linear layer
		switch {
		case len(t.Shape) == 4 && t.Shape[2] == 1 && t.Shape[3] == 1:
			w.Shape = []int64{t.Shape[0], t.Shape[1]}
		case len(t.Shape) == 2:
		default:
			return Weight{}, fmt.Errorf("checkpoint: %s: shape %v is neither a 1x1 convolution nor a linear weight", origin, t.Shape)
		}
	case o.transpose:
		if len(t.Shape) != 2 {
			return Weight{}, fmt.Errorf("checkpoint: %s: shape %v is not a matrix", origin, t.Shape)
		}
		r, c := t.Shape[0], t.Shape[1]
		out := make([]byte, len(data))
		for i := int64(0); i < r; i++ {
			for j := int64(0); j < c; j++ {
				copy(out[(j*r+i)*size:(j*r+i+1)*size], data[(i*c+j)*size:(i*c+j+1)*size])
			}
		}
		w.Data, w.Shape = out, []int64{c, r}
	}
	return w, nil
}

// predictionType reads the prediction type trainers record in a checkpoint's
// __metadata__: Stability's model spec ("modelspec.prediction_type": "v" or
// "epsilon") or kohya's sd-scripts ("ss_v_parameterization": "True"/"False").
func predictionType(meta map[string]string) string {
	switch strings.ToLower(meta["modelspec.prediction_type"]) {
	case "v", "v_prediction", "v-prediction":
		return "v_prediction"
	case "epsilon", "eps":
		return "epsilon"
	}
	switch strings.ToLower(meta["ss_v_parameterization"]) {
	case "true":
		return "v_prediction"
	case "false":
		return "epsilon"
	}
	return ""
}
