package checkpoint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LayoutFamily tells the family of a pipeline folder in the diffusers layout
// (or the ONNX layout, whose component configs carry the same keys) from its
// model_index.json and configs: SDXL has a second text encoder or an XL
// pipeline class; SD 2.x's text encoder is OpenCLIP's (gelu, or 1024 wide);
// everything else is SD 1.x. Widths are not used alone, so tiny checkpoints
// are told apart as full-size ones are.
func LayoutFamily(dir string) (Family, error) {
	var index map[string]json.RawMessage
	b, err := os.ReadFile(filepath.Join(dir, "model_index.json"))
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &index); err != nil {
		return "", fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "model_index.json"), err)
	}
	var class string
	_ = json.Unmarshal(index["_class_name"], &class)
	if te2, ok := index["text_encoder_2"]; ok && string(te2) != "null" || strings.Contains(class, "XL") {
		return SDXL, nil
	}
	var te struct {
		HiddenAct  string `json:"hidden_act"`
		HiddenSize int    `json:"hidden_size"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "text_encoder", "config.json")); err == nil {
		if err := json.Unmarshal(b, &te); err != nil {
			return "", fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "text_encoder", "config.json"), err)
		}
	}
	if te.HiddenAct == "gelu" || te.HiddenSize == 1024 {
		return SD2, nil
	}
	return SD1, nil
}
