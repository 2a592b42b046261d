package clip

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Files of a diffusers tokenizer folder.
const (
	vocabFile         = "vocab.json"
	mergesFile        = "merges.txt"
	configFile        = "tokenizer_config.json"
	specialTokensFile = "special_tokens_map.json"
)

// Load reads a diffusers tokenizer folder: vocab.json and merges.txt, which must
// exist, and tokenizer_config.json and special_tokens_map.json, which may. The
// pad and unknown tokens come from those two files; as in transformers, a value
// in special_tokens_map.json wins over one in tokenizer_config.json. Without
// either, padding uses "<|endoftext|>". The added tokens (see AddedToken) are
// tokenizer_config.json's added_tokens_decoder, then the special tokens (pad,
// unk, additional_special_tokens, with the flags of their object form), then
// the start- and end-of-text tokens. Errors name the file at fault.
func Load(dir string) (*Tokenizer, error) {
	vocabPath := filepath.Join(dir, vocabFile)
	raw, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("clip: read vocabulary: %w", err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, fmt.Errorf("clip: parse %s: %w", vocabPath, err)
	}

	mergesPath := filepath.Join(dir, mergesFile)
	raw, err = os.ReadFile(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("clip: read merges: %w", err)
	}
	merges, err := parseMerges(raw)
	if err != nil {
		return nil, fmt.Errorf("clip: parse %s: %w", mergesPath, err)
	}

	var (
		pad, unk   tokenSpec
		additional []tokenSpec
		decoder    map[string]tokenSpec
	)
	for _, name := range []string{configFile, specialTokensFile} {
		cfg, err := readTokenConfig(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if cfg.Pad.Content != "" {
			pad = cfg.Pad
		}
		if cfg.Unk.Content != "" {
			unk = cfg.Unk
		}
		if cfg.Additional != nil {
			additional = cfg.Additional
		}
		if name == configFile {
			decoder = cfg.AddedTokensDecoder
		}
	}

	opts := Options{PadToken: pad.Content, UnkToken: unk.Content}
	// added_tokens_decoder first, in id order, as transformers adds them.
	ids := make([]int, 0, len(decoder))
	byID := make(map[int]tokenSpec, len(decoder))
	for key, spec := range decoder {
		id, err := strconv.Atoi(key)
		if err != nil {
			return nil, fmt.Errorf("clip: parse %s: added_tokens_decoder key %q is not an id", filepath.Join(dir, configFile), key)
		}
		if spec.Content == "" {
			return nil, fmt.Errorf("clip: parse %s: added token %d has no content", filepath.Join(dir, configFile), id)
		}
		ids = append(ids, id)
		byID[id] = spec
	}
	slices.Sort(ids)
	for _, id := range ids {
		opts.AddedTokens = append(opts.AddedTokens, byID[id].added(id))
	}
	// Then the special tokens, with the flags of their object form. One that
	// is not in the vocabulary is left for NewWithOptions to report.
	for _, spec := range append([]tokenSpec{pad, unk}, additional...) {
		if spec.Content == "" {
			continue
		}
		id, ok := vocab[spec.Content]
		if !ok {
			continue
		}
		opts.AddedTokens = append(opts.AddedTokens, spec.added(id))
	}
	for _, spec := range additional {
		if _, ok := vocab[spec.Content]; !ok {
			return nil, fmt.Errorf("clip: additional special token %q is not in the vocabulary (loading %s)", spec.Content, dir)
		}
	}

	t, err := NewWithOptions(vocab, merges, opts)
	if err != nil {
		return nil, fmt.Errorf("%w (loading %s)", err, dir)
	}
	return t, nil
}

// parseMerges reads merges.txt: an optional "#version" line, then one merge per
// line, two symbols separated by a space, highest priority first.
func parseMerges(raw []byte) ([][2]string, error) {
	var merges [][2]string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() && len(merges) < maxMerges {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || (line == 1 && strings.HasPrefix(text, "#version")) {
			continue
		}
		fields := strings.Fields(text)
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want two symbols, got %q", line, text)
		}
		merges = append(merges, [2]string{fields[0], fields[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if len(merges) == 0 {
		return nil, errors.New("no merges")
	}
	return merges, nil
}

// tokenConfig holds the entries of tokenizer_config.json or
// special_tokens_map.json this package uses.
type tokenConfig struct {
	Pad                tokenSpec            `json:"pad_token"`
	Unk                tokenSpec            `json:"unk_token"`
	Additional         []tokenSpec          `json:"additional_special_tokens"`
	AddedTokensDecoder map[string]tokenSpec `json:"added_tokens_decoder"`
}

// tokenSpec is a token as transformers writes it: either a plain string or an
// AddedToken object whose "content" is the string.
type tokenSpec struct {
	Content                    string
	LStrip, RStrip, SingleWord bool
}

// added is spec as the AddedToken with the given id.
func (spec tokenSpec) added(id int) AddedToken {
	return AddedToken{Content: spec.Content, ID: id, LStrip: spec.LStrip, RStrip: spec.RStrip, SingleWord: spec.SingleWord}
}

// UnmarshalJSON accepts both forms, and null.
func (spec *tokenSpec) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*spec = tokenSpec{Content: s}
		return nil
	}
	var obj struct {
		Content    *string `json:"content"`
		LStrip     bool    `json:"lstrip"`
		RStrip     bool    `json:"rstrip"`
		SingleWord bool    `json:"single_word"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("special token: want a string or an object with \"content\", got %s", b)
	}
	if obj.Content == nil {
		return fmt.Errorf("special token: object has no \"content\": %s", b)
	}
	*spec = tokenSpec{Content: *obj.Content, LStrip: obj.LStrip, RStrip: obj.RStrip, SingleWord: obj.SingleWord}
	return nil
}

// readTokenConfig reads an optional config file; a missing file yields an
// empty configuration.
func readTokenConfig(path string) (tokenConfig, error) {
	var cfg tokenConfig
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("clip: read %s: %w", filepath.Base(path), err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, fmt.Errorf("clip: parse %s: %w", path, err)
	}
	return cfg, nil
}
