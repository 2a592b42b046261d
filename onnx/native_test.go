package onnx

import (
	"testing"

	"github.com/diffute/diffute/tinymodel"
)

// TestDescribeModel reads the tiny models' configs, without ONNX Runtime.
func TestDescribeModel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, family, format string
		side, steps          int
		guidance             float64
		turbo                bool
	}{
		{tinymodel.NameSD, "sd1", "onnx", 512, DefaultSteps, DefaultGuidanceSD, false},
		{tinymodel.NameSD + "+diffusers", "sd1", "diffusers", 512, DefaultSteps, DefaultGuidanceSD, false},
		{tinymodel.NameSDXL + "+diffusers", "sdxl", "diffusers", 1024, DefaultSteps, DefaultGuidanceSDXL, false},
		{tinymodel.NameSDXLTurbo + "+diffusers", "sdxl", "diffusers", 512, DefaultTurboSteps, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			info, err := DescribeModel("m", tinyModel(t, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			if info.Family != tc.family || info.SourceFormat != tc.format || info.Width != tc.side || info.Height != tc.side ||
				info.DefaultSteps != tc.steps || info.DefaultGuidance != tc.guidance || info.Turbo != tc.turbo || len(info.Schedulers) == 0 {
				t.Errorf("DescribeModel = %+v", info)
			}
		})
	}
}
