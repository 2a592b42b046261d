package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/diffute/diffute/internal/fixtures"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cacheFixtureSDXL lays out a Hugging Face cache holding repo fixture/sdxl: an
// SDXL ONNX export whose tokenizer folders are the reference checkpoint's (the
// real CLIP vocabulary) and whose ONNX files are empty stand-ins, which the
// tokenize command never reads.
func cacheFixtureSDXL(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(fixtures.Path(t, "checkpoints", "sdxl"))
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	const commit = "0123456789abcdef0123456789abcdef01234567"
	repo := filepath.Join(cache, "models--fixture--sdxl")
	snap := filepath.Join(repo, "snapshots", commit)
	write := func(path string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(repo, "refs", "main"), []byte(commit))
	index, err := os.ReadFile(filepath.Join(abs, "model_index.json"))
	if err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(snap, "model_index.json"), index)
	write(filepath.Join(snap, "scheduler", "scheduler_config.json"), []byte("{}"))
	for _, f := range []string{"unet", "text_encoder", "text_encoder_2", "vae_decoder"} {
		write(filepath.Join(snap, f, "model.onnx"), nil)
	}
	for _, f := range []string{"tokenizer", "tokenizer_2"} {
		if err := os.Symlink(filepath.Join(abs, f), filepath.Join(snap, f)); err != nil {
			t.Fatal(err)
		}
	}
	return cache
}

// TestTokenizeMatchesReference runs `diffute tokenize --json` on every
// reference prompt against a model whose tokenizers are the real CLIP ones and
// compares each tokenizer's ids with what transformers gives.
func TestTokenizeMatchesReference(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(fixtures.Path(t, "tokenizer-ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Prompts []struct {
			Prompt    string  `json:"prompt"`
			NumTokens int     `json:"num_tokens"`
			Truncated bool    `json:"truncated"`
			IDs       []int64 `json:"ids"`
			IDs2      []int64 `json:"ids_tokenizer_2"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	args := []string{"tokenize", "--model", "fixture/sdxl", "--json", "--"}
	for _, p := range ref.Prompts {
		args = append(args, p.Prompt)
	}
	getenv := testEnv(t, "", map[string]string{"HF_HUB_CACHE": cacheFixtureSDXL(t)})
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("tokenize: %v\n%s", err, stderr.String())
	}
	var got tokenizeReport
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("tokenize --json printed invalid JSON: %v", err)
	}
	if got.Model != "fixture/sdxl" || len(got.Prompts) != len(ref.Prompts) {
		t.Fatalf("report for model %q with %d prompts, want fixture/sdxl with %d", got.Model, len(got.Prompts), len(ref.Prompts))
	}
	matched := [2]int{}
	for i, p := range ref.Prompts {
		g := got.Prompts[i]
		if g.Prompt != p.Prompt || len(g.Tokenizers) != 2 || g.Tokenizers[0].Name != "tokenizer" || g.Tokenizers[1].Name != "tokenizer_2" {
			t.Fatalf("prompt %d: report %q with %d tokenizers, want %q with tokenizer and tokenizer_2", i, g.Prompt, len(g.Tokenizers), p.Prompt)
		}
		for k, want := range [][]int64{p.IDs, p.IDs2} {
			tr := g.Tokenizers[k]
			ok := slices.Equal(tr.InputIDs, want) &&
				len(tr.Tokens) == min(tr.NumTokens, 75)+2 && tr.Tokens[0] == "<|startoftext|>" && tr.Tokens[len(tr.Tokens)-1] == "<|endoftext|>" &&
				len(tr.TruncatedIDs) == max(tr.NumTokens-75, 0) && len(tr.TruncatedTokens) == len(tr.TruncatedIDs) &&
				tr.Truncated == (tr.NumTokens > 75)
			if k == 0 {
				ok = ok && tr.NumTokens == p.NumTokens && tr.Truncated == p.Truncated && tr.PadID == 49407
			} else {
				ok = ok && tr.PadID == 0
			}
			if ok {
				matched[k]++
			} else {
				t.Errorf("prompt %q, %s: got %+v, want ids %v", p.Prompt, tr.Name, tr, want)
			}
		}
	}
	t.Logf("tokenizer %d/%d, tokenizer_2 %d/%d prompts match", matched[0], len(ref.Prompts), matched[1], len(ref.Prompts))
}

// TestTokenizeText checks the text report on the tiny models, offline: one
// section per tokenizer, and a truncation line only where tokens were dropped.
func TestTokenizeText(t *testing.T) {
	t.Parallel()
	getenv := testEnv(t, "", nil)
	long := strings.Repeat("fox ", 100)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"tokenize", "--model", "diffute/tiny-sdxl", "a cat!!!", long}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("tokenize: %v\n%s", err, stderr.String())
	}
	blocks := strings.Split(stdout.String(), "\n\n")
	if len(blocks) != 2 {
		t.Fatalf("want one block per prompt, got %d:\n%s", len(blocks), stdout.String())
	}
	short, truncated := blocks[0], blocks[1]
	for _, want := range []string{`"a cat!!!"`, "  tokenizer: ", "  tokenizer_2: ", "(pad 0)", "    ids     ", "    tokens  <|startoftext|> "} {
		if !strings.Contains(short, want) {
			t.Errorf("report lacks %q:\n%s", want, short)
		}
	}
	if strings.Contains(short, "truncated") {
		t.Errorf("short prompt reported as truncated:\n%s", short)
	}
	if n := strings.Count(truncated, "    truncated: "); n != 2 {
		t.Errorf("long prompt: %d truncation lines, want one per tokenizer:\n%s", n, truncated)
	}
	// tokenizer_2 splits out each "!" (its pad token) as id 0.
	if !strings.Contains(short, " ! ! ! <|endoftext|>") {
		t.Errorf(`tokenizer_2 should show three "!" tokens:\n%s`, short)
	}

	stdout.Reset()
	if err := run(context.Background(), []string{"tokenize", "--model", "diffute/tiny-sd", "a cat"}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("tokenize: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stdout.String(), "tokenizer_2") || !strings.Contains(stdout.String(), "  tokenizer: 3 tokens of 75") {
		t.Errorf("tiny-sd has one tokenizer and three tokens for %q:\n%s", "a cat", stdout.String())
	}
}

// TestTokenizeBadInput checks each mistake gets one line naming it.
func TestTokenizeBadInput(t *testing.T) {
	t.Parallel()
	getenv := testEnv(t, "", nil)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"tokenize", "--model", "diffute/tiny-sd", "--bogus", "x"}, "-bogus"},
		{[]string{"tokenize", "--model", "diffute/tiny-sd", "x", "--json=maybe"}, "-json"},
		{[]string{"tokenize", "x"}, "--model NAME is required"},
		{[]string{"tokenize", "--model", "diffute/tiny-sd"}, "at least one PROMPT"},
		{[]string{"tokenize", "--model", "nobody/nothing", "x"}, "diffute models pull nobody/nothing"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, getenv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") || stderr.Len() != 0 {
			t.Errorf("diffute %s: error %v (stderr %q), want one line containing %q", strings.Join(tt.args, " "), err, stderr.String(), tt.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"tokenize", "-h"}, getenv, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "-json") {
		t.Errorf("tokenize -h: %v, stdout %q; want the usage with its flags", err, stdout.String())
	}
}
