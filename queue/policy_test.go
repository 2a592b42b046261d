package queue

import (
	"regexp"
	"strings"
	"testing"
)

func TestInferenceQueueNames(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, m := range []string{"diffute/tiny-sd", "diffute/tiny_sd", "Diffute/Tiny-SD",
		"stabilityai/stable-diffusion-xl-base-1.0", strings.Repeat("very-long-org/", 10) + "model", "///"} {
		q := InferenceQueue(m)
		if !queueName.MatchString(q) || len(q) > 64 {
			t.Errorf("InferenceQueue(%q) = %q: not a valid River queue name", m, q)
		}
		if other, ok := seen[q]; ok {
			t.Errorf("InferenceQueue(%q) = InferenceQueue(%q) = %q", m, other, q)
		}
		seen[q] = m
	}
	if q := InferenceQueue("diffute/tiny-sd"); !strings.HasPrefix(q, "inference_diffute-tiny-sd_") {
		t.Errorf("InferenceQueue(diffute/tiny-sd) = %q, want a readable prefix", q)
	}
}

// queueName is River's rule for queue names (river.validateQueueName).
var queueName = regexp.MustCompile(`^(?:[a-z0-9])+(?:[_|\-]?[a-z0-9]+)*$`)
