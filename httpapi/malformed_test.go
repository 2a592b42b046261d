package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/diffute/diffute"
)

// mutate returns the example request changed by f, as JSON.
func mutate(t *testing.T, f func(m map[string]any)) []byte {
	m := exampleRequest()
	f(m)
	return mustJSON(t, m)
}

func prompt0(m map[string]any) map[string]any { return m["prompts"].([]any)[0].(map[string]any) }

func setPrompt(key string, v any) func(m map[string]any) {
	return func(m map[string]any) { prompt0(m)[key] = v }
}

func manyPrompts(n, images int) func(m map[string]any) {
	return func(m map[string]any) {
		ps := make([]any, n)
		for i := range ps {
			ps[i] = map[string]any{"name": fmt.Sprintf("p%d", i), "prompt": "x", "num_images": images, "width": 64, "height": 64}
		}
		m["prompts"] = ps
	}
}

// onlyReader hides the length of a body, so the client sends it chunked.
type onlyReader struct{ io.Reader }

func TestMalformedRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	revoked := b.mem.addKey(diffute.APIKey{ID: 2, Org: org, RevokedAt: time.Now()})
	otherOrg := b.mem.addKey(diffute.APIKey{ID: 3, Org: "globex"})
	otherProject := b.mem.addKey(diffute.APIKey{ID: 4, Org: org, Project: "other-project"})
	valid := string(mustJSON(t, exampleRequest()))
	huge := mutate(t, setPrompt("prompt", strings.Repeat("a", int(diffute.DefaultLimits.MaxBodyBytes))))
	jsonCT := "application/json"

	tests := []struct {
		name   string
		path   string // default: /org/project/media/inference
		ct     string // default: application/json; "-" sends none
		key    string // default: b.key; "-" sends none
		body   any
		status int
		field  string
		detail string // a substring the detail must contain
	}{
		// Not JSON, or not one object.
		{name: "syntax error", body: `{"name": }`, status: 400, detail: "byte offset 9"},
		{name: "truncated", body: `{"name": "Houston"`, status: 400},
		{name: "empty body", body: ``, status: 400},
		{name: "whitespace body", body: " \n\t", status: 400},
		{name: "array body", body: `[]`, status: 400},
		{name: "null body", body: `null`, status: 400},
		{name: "string body", body: `"hello"`, status: 400},
		{name: "trailing object", body: valid + ` {}`, status: 400},
		{name: "trailing garbage", body: valid + `x`, status: 400},
		{name: "single quotes", body: `{'name': 'x'}`, status: 400},
		// Wrong types.
		{name: "name is number", body: mutate(t, func(m map[string]any) { m["name"] = 7 }), status: 422, field: "name"},
		{name: "prompts is object", body: mutate(t, func(m map[string]any) { m["prompts"] = map[string]any{"a": 1} }), status: 422, field: "prompts"},
		{name: "prompt is number", body: mutate(t, func(m map[string]any) { m["prompts"] = []any{1} }), status: 422, field: "prompts[0]"},
		{name: "num_images string", body: mutate(t, setPrompt("num_images", "3")), status: 422, field: "prompts[0].num_images"},
		{name: "num_images fraction", body: mutate(t, setPrompt("num_images", 1.5)), status: 422, field: "prompts[0].num_images"},
		{name: "num_images huge exponent", body: strings.Replace(valid, `"num_images":3`, `"num_images":1e400`, 1), status: 422, field: "prompts[0].num_images"},
		{name: "seed overflows int64", body: strings.Replace(valid, `"num_images":3`, `"num_images":3,"seed":123456789012345678901234567890`, 3), status: 422, field: "prompts[0].seed"},
		{name: "seed above 2^53", body: mutate(t, setPrompt("seed", int64(diffute.MaxSeed)+1)), status: 422, field: "prompts[0].seed"},
		{name: "seed negative", body: mutate(t, setPrompt("seed", -1)), status: 422, field: "prompts[0].seed"},
		{name: "seed fraction", body: mutate(t, setPrompt("seed", 1.5)), status: 422, field: "prompts[0].seed"},
		{name: "rng unknown", body: mutate(t, setPrompt("rng", "mt19937")), status: 422, field: "prompts[0].rng", detail: "torch, cuda"},
		{name: "rng is number", body: mutate(t, setPrompt("rng", 1)), status: 422, field: "prompts[0].rng"},
		{name: "guidance is string", body: mutate(t, setPrompt("guidance_scale", "high")), status: 422, field: "prompts[0].guidance_scale"},
		{name: "webhook is array", body: mutate(t, func(m map[string]any) { m["webhook"] = []any{"http://a"} }), status: 422, field: "webhook"},
		{name: "width is bool", body: mutate(t, setPrompt("width", true)), status: 422, field: "prompts[0].width"},
		// Missing fields.
		{name: "missing name", body: mutate(t, func(m map[string]any) { delete(m, "name") }), status: 422, field: "name"},
		{name: "missing prompts", body: mutate(t, func(m map[string]any) { delete(m, "prompts") }), status: 422, field: "prompts"},
		{name: "empty prompts", body: mutate(t, func(m map[string]any) { m["prompts"] = []any{} }), status: 422, field: "prompts"},
		{name: "null prompt", body: mutate(t, func(m map[string]any) { m["prompts"] = []any{nil} }), status: 422, field: "prompts[0].name"},
		{name: "missing prompt text", body: mutate(t, func(m map[string]any) { delete(prompt0(m), "prompt") }), status: 422, field: "prompts[0].prompt"},
		{name: "missing model", body: mutate(t, func(m map[string]any) { delete(m, "pretrained_model_name") }), status: 422, field: "pretrained_model_name"},
		{name: "width 0", body: mutate(t, setPrompt("width", 0)), status: 422, field: "prompts[0].width"}, // absent is the model's native width
		{name: "num_images 0", body: mutate(t, setPrompt("num_images", 0)), status: 422, field: "prompts[0].num_images"},
		// Unknown and repeated fields.
		{name: "unknown top-level field", body: mutate(t, func(m map[string]any) { m["colour"] = "red" }), status: 422, field: "colour"},
		{name: "unknown prompt field", body: mutate(t, func(m map[string]any) { m["prompts"].([]any)[2].(map[string]any)["negativ_prompt"] = "x" }), status: 422, field: "prompts[2].negativ_prompt"},
		{name: "field in wrong case", body: strings.Replace(valid, `"name":"Houston"`, `"NAME":"Houston"`, 1), status: 422, field: "NAME"},
		{name: "duplicate key", body: strings.Replace(valid, `"name":"Houston"`, `"name":"Houston","name":"Austin"`, 1), status: 422, field: "name"},
		// Prompt names.
		{name: "duplicate prompt names", body: mutate(t, func(m map[string]any) { m["prompts"].([]any)[1].(map[string]any)["name"] = "Ansel_Adams" }), status: 422, field: "prompts[1].name"},
		{name: "duplicate prompt names by case", body: mutate(t, func(m map[string]any) { m["prompts"].([]any)[1].(map[string]any)["name"] = "ansel_adams" }), status: 422, field: "prompts[1].name"},
		{name: "prompt name ../x", body: mutate(t, setPrompt("name", "../x")), status: 422, field: "prompts[0].name"},
		{name: "prompt name a/b", body: mutate(t, setPrompt("name", "a/b")), status: 422, field: "prompts[0].name"},
		{name: "prompt name é", body: mutate(t, setPrompt("name", "é")), status: 422, field: "prompts[0].name"},
		{name: "prompt name empty", body: mutate(t, setPrompt("name", "")), status: 422, field: "prompts[0].name"},
		{name: "prompt name 65 chars", body: mutate(t, setPrompt("name", strings.Repeat("a", 65))), status: 422, field: "prompts[0].name"},
		{name: "prompt name with space", body: mutate(t, setPrompt("name", "a b")), status: 422, field: "prompts[0].name"},
		{name: "prompt name dot", body: mutate(t, setPrompt("name", ".")), status: 422, field: "prompts[0].name"},
		// Numbers out of range.
		{name: "negative width", body: mutate(t, setPrompt("width", -768)), status: 422, field: "prompts[0].width"},
		{name: "height not multiple of 8", body: mutate(t, setPrompt("height", 1020)), status: 422, field: "prompts[0].height"},
		{name: "side too small", body: mutate(t, setPrompt("width", 32)), status: 422, field: "prompts[0].width"},
		{name: "side too large", body: mutate(t, setPrompt("height", 4096)), status: 422, field: "prompts[0].height"},
		{name: "too many pixels", body: mutate(t, func(m map[string]any) { prompt0(m)["width"] = 2048; prompt0(m)["height"] = 2048 }), status: 422, field: "prompts[0].width"},
		{name: "huge num_images", body: mutate(t, setPrompt("num_images", 1_000_000_000)), status: 422, field: "prompts[0].num_images"},
		{name: "zero num_images", body: mutate(t, setPrompt("num_images", 0)), status: 422, field: "prompts[0].num_images"},
		{name: "too many prompts", body: mutate(t, manyPrompts(diffute.DefaultLimits.MaxPrompts+1, 1)), status: 422, field: "prompts"},
		{name: "too many images", body: mutate(t, manyPrompts(9, 8)), status: 422, field: "prompts"},
		{name: "negative steps", body: mutate(t, setPrompt("steps", -1)), status: 422, field: "prompts[0].steps"},
		{name: "guidance too high", body: mutate(t, setPrompt("guidance_scale", 100)), status: 422, field: "prompts[0].guidance_scale"},
		{name: "unknown scheduler", body: mutate(t, setPrompt("scheduler", "magic")), status: 422, field: "prompts[0].scheduler"},
		{name: "control character in prompt", body: mutate(t, setPrompt("prompt", "a\x00b")), status: 422, field: "prompts[0].prompt"},
		{name: "name too long", body: mutate(t, func(m map[string]any) { m["name"] = strings.Repeat("n", 201) }), status: 422, field: "name"},
		// Model, format, webhook, secret.
		{name: "unknown model", body: mutate(t, func(m map[string]any) { m["pretrained_model_name"] = "runwayml/stable-diffusion-v1-5" }), status: 422, field: "pretrained_model_name", detail: "tiny-sd, stabilityai/stable-diffusion-xl-base-1.0"},
		{name: "unknown output format", body: mutate(t, func(m map[string]any) { m["output_format"] = "gif" }), status: 422, field: "output_format"},
		{name: "webhook ftp", body: mutate(t, func(m map[string]any) { m["webhook"] = "ftp://example.com/hook" }), status: 422, field: "webhook"},
		{name: "webhook no host", body: mutate(t, func(m map[string]any) { m["webhook"] = "https:///hook" }), status: 422, field: "webhook"},
		{name: "webhook relative", body: mutate(t, func(m map[string]any) { m["webhook"] = "/hook" }), status: 422, field: "webhook"},
		{name: "webhook user info", body: mutate(t, func(m map[string]any) { m["webhook"] = "https://user:pass@example.com/hook" }), status: 422, field: "webhook"},
		{name: "webhook not a URL", body: mutate(t, func(m map[string]any) { m["webhook"] = "http://[::1" }), status: 422, field: "webhook"},
		{name: "secret with newline", body: mutate(t, func(m map[string]any) { m["secret"] = "abc\r\nX-Evil: 1" }), status: 422, field: "secret"},
		// Transport: size and content type.
		{name: "oversize body", body: huge, status: 413},
		{name: "oversize chunked body", body: onlyReader{strings.NewReader(string(huge))}, status: 413},
		{name: "text/plain", ct: "text/plain", body: valid, status: 415, field: "Content-Type"},
		{name: "no content type", ct: "-", body: valid, status: 415, field: "Content-Type"},
		{name: "form content type", ct: "application/x-www-form-urlencoded", body: valid, status: 415, field: "Content-Type"},
		{name: "latin-1 charset", ct: "application/json; charset=iso-8859-1", body: valid, status: 415, field: "Content-Type"},
		{name: "malformed content type", ct: "application/json; charset", body: valid, status: 415, field: "Content-Type"},
		// Keys and tenants.
		{name: "missing key", key: "-", body: valid, status: 401, field: "x-api-key"},
		{name: "bad key", key: "dfk_not-a-real-key/default", body: valid, status: 401, field: "x-api-key"},
		{name: "revoked key", key: revoked, body: valid, status: 401, field: "x-api-key"},
		{name: "another org's key", key: otherOrg, body: valid, status: 403, field: "x-api-key"},
		{name: "another project's key", key: otherProject, body: valid, status: 403, field: "x-api-key"},
		{name: "bad org in path", path: "/acme%20corp/" + project + "/media/inference", body: valid, status: 404},
		{name: "org too long", path: "/" + strings.Repeat("o", 65) + "/" + project + "/media/inference", body: valid, status: 404},
		{name: "hidden project", path: "/" + org + "/.git/media/inference", body: valid, status: 404},
	}
	if len(tests) < 40 {
		t.Fatalf("only %d malformed requests", len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			header := map[string]string{"Content-Type": jsonCT, "x-api-key": b.key}
			if tc.ct == "-" {
				delete(header, "Content-Type")
			} else if tc.ct != "" {
				header["Content-Type"] = tc.ct
			}
			if tc.key == "-" {
				delete(header, "x-api-key")
			} else if tc.key != "" {
				header["x-api-key"] = tc.key
			}
			path := tc.path
			if path == "" {
				path = "/" + org + "/" + project + "/media/inference"
			}
			resp, body := b.do(t, http.MethodPut, path, header, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			p := decodeProblem(t, resp, body)
			if p.Field != tc.field {
				t.Errorf("field %q, want %q; detail %q", p.Field, tc.field, p.Detail)
			}
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", p.Detail, tc.detail)
			}
			if p.Detail == "internal error" {
				t.Errorf("a client error was reported as internal")
			}
		})
	}
	if n := b.mem.createCount(); n != 0 {
		t.Errorf("%d malformed requests reached Store.CreateJob", n)
	}
	resp, body := b.do(t, http.MethodGet, "/healthz", nil, nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Errorf("/healthz after the malformed requests: %d %s", resp.StatusCode, body)
	}
	// The same server still accepts a good request.
	if resp, body := b.put(t, valid); resp.StatusCode != http.StatusAccepted {
		t.Errorf("valid request after the malformed ones: %d %s", resp.StatusCode, body)
	}
}
