package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/diffute/diffute"
)

const exampleBody = `{
  "prompts": [
    {"name": "Ansel_Adams", "prompt": "Yosemite", "num_images": 3, "height": 1024, "width": 768,
     "style": "photography in the style of Ansel Adams", "seed": 42, "guidance_scale": 7.5}
  ],
  "webhook": "https://hooks.example.com/x",
  "secret": "4f986e48-0129-480e-996a-728ea57c020c",
  "pretrained_model_name": "tiny-sd",
  "name": "Houston"
}`

// The decoder keeps an absent (or null) negative prompt apart from "", which
// the engine treats differently (diffusers' force_zeros_for_empty_prompt).
func TestDecodeNegativePromptPresence(t *testing.T) {
	t.Parallel()
	req, err := decodeInferenceRequest([]byte(`{"prompts": [{"negative_prompt": ""}, {}, {"negative_prompt": null}, {"negative_prompt": "blurry", "rng": "cuda"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p := req.Prompts
	if p[0].NegativePrompt == nil || *p[0].NegativePrompt != "" || p[1].NegativePrompt != nil || p[2].NegativePrompt != nil ||
		p[3].NegativePrompt == nil || *p[3].NegativePrompt != "blurry" || p[3].RNG != "cuda" {
		t.Errorf("decoded %+v", p)
	}
}

func TestDecodeInferenceRequest(t *testing.T) {
	t.Parallel()
	req, err := decodeInferenceRequest([]byte(exampleBody))
	if err != nil {
		t.Fatal(err)
	}
	if req.Name != "Houston" || len(req.Prompts) != 1 || *req.Prompts[0].Seed != 42 || *req.Prompts[0].GuidanceScale != 7.5 ||
		req.Prompts[0].Height != 1024 || req.PretrainedModelName != "tiny-sd" {
		t.Errorf("decoded %+v", req)
	}
	for _, tc := range []struct {
		body, code, field, detail string
	}{
		{`{"name": 1}`, diffute.EUNPROCESSABLE, "name", "must be a string"},
		{`{"prompts": [{}, {"num_images": "3"}]}`, diffute.EUNPROCESSABLE, "prompts[1].num_images", "must be an integer"},
		{`{"prompts": [{"seed": 1e3}]}`, diffute.EUNPROCESSABLE, "prompts[0].seed", "must be an integer"},
		{`{"prompts": [{"seed": 99999999999999999999}]}`, diffute.EUNPROCESSABLE, "prompts[0].seed", "out of range"},
		{`{"prompts": [{"guidance_scale": 1e999}]}`, diffute.EUNPROCESSABLE, "prompts[0].guidance_scale", "out of range"},
		{`{"prompts": [{"x": {"y": [1, 2]}}]}`, diffute.EUNPROCESSABLE, "prompts[0].x", "unknown field"},
		{`{"name": "a", "name": "b"}`, diffute.EUNPROCESSABLE, "name", "more than once"},
		{`{"name": "a"} // comment`, diffute.EINVALID, "", "after the JSON object"},
		{"{\"name\": \"a\",\n \"prompts\": [}", diffute.EINVALID, "", "byte offset 27"},
		{`{"name": "a"`, diffute.EINVALID, "", "ends at byte offset"},
		{`true`, diffute.EINVALID, "", "JSON object"},
	} {
		_, err := decodeInferenceRequest([]byte(tc.body))
		if diffute.ErrorCode(err) != tc.code || diffute.ErrorField(err) != tc.field || !strings.Contains(diffute.ErrorMessage(err), tc.detail) {
			t.Errorf("%s: got %v (field %q), want code %s field %q detail containing %q",
				tc.body, err, diffute.ErrorField(err), tc.code, tc.field, tc.detail)
		}
	}
}

// FuzzDecodeInferenceRequest checks that any body is either accepted or refused with a
// client error (never a panic, never an internal error), and that an accepted,
// validated request re-encodes to a body that decodes to the same request.
func FuzzDecodeInferenceRequest(f *testing.F) {
	f.Add([]byte(exampleBody))
	f.Add([]byte(`{"prompts":[null,{"name":"../x"}],"name":"\u0000"}`))
	f.Add([]byte(`{"prompts":[{"num_images":1e400,"seed":-0,"width":-8}]}`))
	f.Add([]byte(`[[[[[[[[[[{}]]]]]]]]]]`))
	f.Add([]byte(`{"name":"a"}{"name":"b"}`))
	f.Add([]byte("{\"name\":\"\xff\xfe\"}"))
	models := []string{"tiny-sd"}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeInferenceRequest(body)
		if err != nil {
			if c := diffute.ErrorCode(err); c != diffute.EINVALID && c != diffute.EUNPROCESSABLE {
				t.Fatalf("decode error %v has code %q", err, c)
			}
			return
		}
		if err := req.Validate(diffute.DefaultLimits, models); err != nil {
			if c := diffute.ErrorCode(err); c != diffute.EUNPROCESSABLE {
				t.Fatalf("validate error %v has code %q", err, c)
			}
			return
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		req2, err := decodeInferenceRequest(again)
		if err != nil {
			t.Fatalf("a valid request re-encoded as %s does not decode: %v", again, err)
		}
		if again2, _ := json.Marshal(req2); string(again2) != string(again) {
			t.Fatalf("round trip changed the request:\n%s\n%s", again, again2)
		}
	})
}
