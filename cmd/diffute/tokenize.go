package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/diffute/diffute/clip"
)

const tokenizeSummary = "tokenize --model NAME [--json] PROMPT…"

// runTokenize prints how a model's tokenizers read each prompt: the ids the
// text encoders get, the vocabulary symbol of each, and what was cut off at
// the encoders' 77 positions. It is for debugging prompts that come out
// differently than expected; it needs no ONNX Runtime.
func runTokenize(ctx context.Context, env *environment, args []string) error {
	fset := newFlagSet(env, "tokenize", tokenizeSummary)
	model := fset.String("model", "", "model name (a Hugging Face repo in the cache, or a tiny test model such as diffute/tiny-sdxl)")
	asJSON := fset.Bool("json", false, "print JSON instead of text")
	prompts, err := parseTokenizeArgs(fset, env, args)
	if err != nil {
		return err
	}
	if *model == "" {
		return errors.New("tokenize: --model NAME is required, for example --model diffute/tiny-sdxl")
	}
	if len(prompts) == 0 {
		return errors.New(`tokenize: name at least one PROMPT, for example: diffute tokenize --model diffute/tiny-sd "a red fox"`)
	}
	src, err := newModelSource(env.getenv)
	if err != nil {
		return err
	}
	dir, err := src.Resolve(ctx, *model)
	if err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	toks, err := loadModelTokenizers(dir)
	if err != nil {
		return fmt.Errorf("tokenize: model %s: %w", *model, err)
	}
	report := tokenizeReport{Model: *model}
	for _, p := range prompts {
		pr := promptTokens{Prompt: p}
		for _, nt := range toks {
			pr.Tokenizers = append(pr.Tokenizers, tokenizeWith(nt.name, nt.tok, p))
		}
		report.Prompts = append(report.Prompts, pr)
	}
	if *asJSON {
		enc := json.NewEncoder(env.stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(report)
	}
	return report.writeText(env.stdout)
}

// parseTokenizeArgs parses flags that may come before, between or after the
// prompts ("--" ends the flags: what follows is prompts, even "-x"), then
// fills unset flags from the environment as every command does. A bad flag is
// a one-line error naming it.
func parseTokenizeArgs(fset *flag.FlagSet, env *environment, args []string) ([]string, error) {
	// Errors are returned, not printed with the usage.
	usage := fset.Usage
	fset.Usage = func() {}
	fset.SetOutput(io.Discard)
	var prompts []string
	for rest := args; len(rest) > 0; {
		if err := fset.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fset.SetOutput(env.stdout)
				usage()
				fset.SetOutput(env.stderr)
				return nil, errHelp
			}
			return nil, fmt.Errorf("tokenize: %w (usage: diffute %s)", err, tokenizeSummary)
		}
		left := fset.Args()
		if consumed := len(rest) - len(left); consumed > 0 && rest[consumed-1] == "--" {
			prompts = append(prompts, left...)
			break
		}
		if len(left) == 0 {
			break
		}
		prompts = append(prompts, left[0])
		rest = left[1:]
	}
	if err := parseFlags(fset, env, nil); err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	return prompts, nil
}

// namedTokenizer is one tokenizer folder of a model.
type namedTokenizer struct {
	name string
	tok  *clip.Tokenizer
}

// loadModelTokenizers loads the model's tokenizer/ and, where the model has
// one (SDXL), tokenizer_2/.
func loadModelTokenizers(dir string) ([]namedTokenizer, error) {
	var toks []namedTokenizer
	for _, name := range []string{"tokenizer", "tokenizer_2"} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); name == "tokenizer_2" && errors.Is(err, fs.ErrNotExist) {
			break
		}
		tok, err := clip.Load(path)
		if err != nil {
			return nil, err
		}
		toks = append(toks, namedTokenizer{name, tok})
	}
	return toks, nil
}

// tokenizeReport is the --json output.
type tokenizeReport struct {
	Model   string         `json:"model"`
	Prompts []promptTokens `json:"prompts"`
}

type promptTokens struct {
	Prompt     string            `json:"prompt"`
	Tokenizers []tokenizerResult `json:"tokenizers"`
}

// tokenizerResult is how one tokenizer reads one prompt.
type tokenizerResult struct {
	Name  string `json:"name"`
	PadID int64  `json:"pad_id"`
	// InputIDs are the MaxLength ids the text encoder gets: BOS, the kept
	// tokens, EOS, then padding.
	InputIDs []int64 `json:"input_ids"`
	// Tokens are the symbols of InputIDs up to and including EOS.
	Tokens []string `json:"tokens"`
	// NumTokens counts the prompt's tokens before truncation, without BOS/EOS.
	NumTokens int  `json:"num_tokens"`
	Truncated bool `json:"truncated"`
	// TruncatedIDs and TruncatedTokens are the tokens beyond the encoder's
	// positions, which it never sees.
	TruncatedIDs    []int    `json:"truncated_ids"`
	TruncatedTokens []string `json:"truncated_tokens"`
}

func tokenizeWith(name string, tok *clip.Tokenizer, prompt string) tokenizerResult {
	ids, truncated := tok.Encode(prompt)
	all := tok.Tokens(prompt)
	kept := min(len(all), clip.MaxLength-2)
	res := tokenizerResult{
		Name:            name,
		PadID:           int64(tok.PadID()),
		InputIDs:        ids,
		NumTokens:       len(all),
		Truncated:       truncated,
		TruncatedIDs:    append([]int{}, all[kept:]...),
		TruncatedTokens: []string{},
	}
	for _, id := range ids[:kept+2] {
		res.Tokens = append(res.Tokens, symbol(tok, int(id)))
	}
	for _, id := range res.TruncatedIDs {
		res.TruncatedTokens = append(res.TruncatedTokens, symbol(tok, id))
	}
	return res
}

// symbol is the vocabulary symbol of id, or its number in angle brackets for
// an id with none (an unknown-token id from a hand-made vocabulary).
func symbol(tok *clip.Tokenizer, id int) string {
	if s, ok := tok.Symbol(id); ok {
		return s
	}
	return "<" + strconv.Itoa(id) + ">"
}

func (r tokenizeReport) writeText(w io.Writer) error {
	var b strings.Builder
	for i, p := range r.Prompts {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%q\n", p.Prompt)
		for _, t := range p.Tokenizers {
			used := len(t.Tokens)
			fmt.Fprintf(&b, "  %s: %d tokens of %d (pad %d)\n", t.Name, t.NumTokens, clip.MaxLength-2, t.PadID)
			fmt.Fprintf(&b, "    ids     %s", joinInts(t.InputIDs[:used]))
			if pad := clip.MaxLength - used; pad > 0 {
				fmt.Fprintf(&b, " (+%d × pad %d)", pad, t.PadID)
			}
			b.WriteByte('\n')
			fmt.Fprintf(&b, "    tokens  %s\n", strings.Join(t.Tokens, " "))
			if t.Truncated {
				fmt.Fprintf(&b, "    truncated: %d tokens did not fit the %d positions and were dropped: %s (ids %s)\n",
					len(t.TruncatedIDs), clip.MaxLength, strings.Join(t.TruncatedTokens, " "), joinInts(t.TruncatedIDs))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func joinInts[T int | int64](ids []T) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(int64(id), 10)
	}
	return strings.Join(s, " ")
}
