package tinymodel_test

import (
	"path/filepath"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/diffute/diffute/tinymodel"
)

// variants are the model variants every graph test covers.
var variants = []struct {
	name string
	opts tinymodel.WriteOptions
}{
	{tinymodel.NameSD, tinymodel.WriteOptions{}},
	{tinymodel.NameSDXL, tinymodel.WriteOptions{}},
	{tinymodel.NameSDXLTurbo, tinymodel.WriteOptions{}},
	{tinymodel.NameSD, tinymodel.WriteOptions{FP16: true}},
	{tinymodel.NameSDXL, tinymodel.WriteOptions{FP16: true}},
	{tinymodel.NameSD, tinymodel.WriteOptions{TimestepFloatScalar: true}},
	{tinymodel.NameSD, tinymodel.WriteOptions{FP16: true, TimestepFloatScalar: true}},
}

func variantName(name string, o tinymodel.WriteOptions) string {
	s := name
	if o.FP16 {
		s += "+fp16"
	}
	if o.TimestepFloatScalar {
		s += "+float-timestep"
	}
	return s
}

func TestSignatures(t *testing.T) {
	t.Parallel()
	requireORT(t)
	for _, v := range variants {
		t.Run(variantName(v.name, v.opts), func(t *testing.T) {
			t.Parallel()
			dir := writeModel(t, v.name, v.opts)
			for comp, sig := range expected(v.name, v.opts) {
				path := filepath.Join(dir, comp, "model.onnx")
				ins, outs, err := ort.GetInputOutputInfo(path)
				if err != nil {
					t.Fatalf("%s: %v", comp, err)
				}
				checkSignature(t, comp+" inputs", ins, sig.ins)
				checkSignature(t, comp+" outputs", outs, sig.outs)
			}
		})
	}
}
