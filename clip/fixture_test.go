package clip

import (
	"encoding/json"
	"github.com/diffute/diffute/internal/fixtures"
	"os"
	"slices"
	"testing"
)

// fixturePrompt is one row of tokenizer-ids.json: the ids transformers' slow
// CLIPTokenizer gives, called as diffusers calls it.
type fixturePrompt struct {
	Index     int     `json:"index"`
	Category  string  `json:"category"`
	Prompt    string  `json:"prompt"`
	NumTokens int     `json:"num_tokens"`
	Truncated bool    `json:"truncated"`
	IDs       []int64 `json:"ids"`
	IDsSecond []int64 `json:"ids_tokenizer_2"`
}

// requireFixtures returns the path of name under the fixture folder, skipping
// the test when the folder is absent, or failing it under CI=true, where the
// folder must be there.
func requireFixtures(tb testing.TB, name string) string {
	tb.Helper()
	return fixtures.Path(tb, name)
}

func loadFixturePrompts(tb testing.TB) []fixturePrompt {
	tb.Helper()
	raw, err := os.ReadFile(requireFixtures(tb, "tokenizer-ids.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var file struct {
		Prompts []fixturePrompt `json:"prompts"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		tb.Fatalf("parse tokenizer-ids.json: %v", err)
	}
	if len(file.Prompts) != 1105 {
		tb.Fatalf("tokenizer-ids.json holds %d prompts, want 1105", len(file.Prompts))
	}
	return file.Prompts
}

// TestFixturePrompts checks every reference prompt, for both variants: CLIP's
// own tokenizer (pad "<|endoftext|>") and SDXL's tokenizer_2 (pad "!", a
// special token there), each loaded from the real tokenizer folders.
func TestFixturePrompts(t *testing.T) {
	t.Parallel()
	prompts := loadFixturePrompts(t)
	variants := []struct {
		name string
		dir  string
		ids  func(p fixturePrompt) []int64
	}{
		{"clip", "clip", func(p fixturePrompt) []int64 { return p.IDs }},
		{"sdxl/tokenizer", "checkpoints/sdxl/tokenizer", func(p fixturePrompt) []int64 { return p.IDs }},
		{"sdxl/tokenizer_2", "checkpoints/sdxl/tokenizer_2", func(p fixturePrompt) []int64 { return p.IDsSecond }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			tok, err := Load(requireFixtures(t, v.dir))
			if err != nil {
				t.Fatal(err)
			}
			matched := 0
			for _, p := range prompts {
				want := v.ids(p)
				got, truncated := tok.Encode(p.Prompt)
				n := len(tok.Tokens(p.Prompt))
				ok := slices.Equal(got, want) && truncated == (n > MaxLength-2)
				if v.name != "sdxl/tokenizer_2" {
					// num_tokens and truncated describe the first tokenizer.
					ok = ok && n == p.NumTokens && truncated == p.Truncated
				}
				if ok {
					matched++
					continue
				}
				t.Errorf("prompt %d (%s) %q:\n got %v (truncated %v, %d tokens)\nwant %v (truncated %v, %d tokens)",
					p.Index, p.Category, p.Prompt, got, truncated, n, want, p.Truncated, p.NumTokens)
			}
			t.Logf("%s: %d/%d prompts match", v.name, matched, len(prompts))
		})
	}
}

// BenchmarkEncodeFixturePrompts encodes all 1105 reference prompts with the
// real CLIP vocabulary and reports prompts/s: "cached" with the word cache
// warm, as a running server has it, "uncached" with it emptied before each
// pass, so every word is merged again.
func BenchmarkEncodeFixturePrompts(b *testing.B) {
	prompts := loadFixturePrompts(b)
	tok, err := Load(requireFixtures(b, "clip"))
	if err != nil {
		b.Fatal(err)
	}
	for _, cached := range []bool{true, false} {
		name := "cached"
		if !cached {
			name = "uncached"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !cached {
					tok.cache.mu.Lock()
					tok.cache.words = nil
					tok.cache.mu.Unlock()
				}
				for _, p := range prompts {
					tok.Encode(p.Prompt)
				}
			}
			b.ReportMetric(float64(b.N*len(prompts))/b.Elapsed().Seconds(), "prompts/s")
		})
	}
}
