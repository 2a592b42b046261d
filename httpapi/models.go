package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/diffute/diffute"
)

// ModelCatalog describes served models: their native size and defaults.
// cmd/diffute backs it with onnx.DescribeModel, which reads configs only.
type ModelCatalog interface {
	DescribeModel(ctx context.Context, name string) (diffute.ModelInfo, error)
}

// DefaultNativeSide is the width and height a prompt gets when it sends
// neither and the server has no Catalog (SD 1.x's native size).
const DefaultNativeSide = 512

// ModelList is the body of GET /{org}/{project}/models.
type ModelList struct {
	Models []diffute.ModelInfo `json:"models"`
}

// listModels handles GET /{org}/{project}/models. A served model that cannot
// be described now (its files are gone) is left out and logged.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) error {
	out := ModelList{Models: []diffute.ModelInfo{}}
	if s.Catalog != nil {
		for _, name := range s.Models {
			info, err := s.Catalog.DescribeModel(r.Context(), name)
			if err != nil {
				s.log().WarnContext(r.Context(), "describe model", "model", name, "err", err)
				continue
			}
			out.Models = append(out.Models, info)
		}
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

// promptPresence records which defaulted members each prompt of a request
// sent: the decoded request cannot tell an absent num_images from 0.
type promptPresence struct {
	Prompts []struct {
		NumImages json.RawMessage `json:"num_images"`
		Width     json.RawMessage `json:"width"`
		Height    json.RawMessage `json:"height"`
	} `json:"prompts"`
}

func absent(v json.RawMessage) bool { return v == nil || string(v) == "null" }

// applyDefaults fills what a prompt left out (absent or null): num_images 1,
// width and height the model's native size. A sent value, 0 included, is kept
// for Validate to judge. A model this deployment does not serve gets no size,
// so Validate reports the model rather than the size.
func (s *Server) applyDefaults(ctx context.Context, req *diffute.InferenceRequest, body []byte) error {
	var sent promptPresence
	if err := json.Unmarshal(body, &sent); err != nil {
		return diffute.Errorf(diffute.EINVALID, "invalid JSON: %v", err) // decodeInferenceRequest has accepted it
	}
	var native *diffute.ModelInfo
	for i := range req.Prompts {
		if i >= len(sent.Prompts) {
			break
		}
		p, has := &req.Prompts[i], sent.Prompts[i]
		if absent(has.NumImages) {
			p.NumImages = 1
		}
		if !absent(has.Width) && !absent(has.Height) {
			continue
		}
		if native == nil {
			info, ok, err := s.nativeSize(ctx, req.PretrainedModelName)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			native = &info
		}
		if absent(has.Width) {
			p.Width = native.Width
		}
		if absent(has.Height) {
			p.Height = native.Height
		}
	}
	return nil
}

// nativeSize describes model for its native size; ok is false for a model
// the deployment does not serve.
func (s *Server) nativeSize(ctx context.Context, model string) (diffute.ModelInfo, bool, error) {
	if model == "" || (s.Models != nil && !slices.Contains(s.Models, model)) {
		return diffute.ModelInfo{}, false, nil
	}
	if s.Catalog == nil {
		return diffute.ModelInfo{Name: model, Width: DefaultNativeSide, Height: DefaultNativeSide}, true, nil
	}
	info, err := s.Catalog.DescribeModel(ctx, model)
	if err != nil {
		s.log().WarnContext(ctx, "describe model", "model", model, "err", err)
		return info, false, diffute.FieldErrorf(diffute.EUNAVAILABLE, "pretrained_model_name",
			"model %q cannot be read on this deployment now; send width and height, or ask its operator", truncate(model, 100))
	}
	return info, true, nil
}
