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
// either, padding uses "<|endoftext|>". Errors name the file at fault.
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

	var pad, unk string
	for _, name := range []string{configFile, specialTokensFile} {
		tokens, err := readSpecialTokens(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if tokens.Pad != "" {
			pad = string(tokens.Pad)
		}
		if tokens.Unk != "" {
			unk = string(tokens.Unk)
		}
	}

	t, err := newTokenizer(vocab, merges, pad, unk)
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

// specialTokens are the entries of tokenizer_config.json or
// special_tokens_map.json this package uses.
type specialTokens struct {
	Pad tokenName `json:"pad_token"`
	Unk tokenName `json:"unk_token"`
}

// tokenName is a special token as transformers writes it: either a plain string
// or an AddedToken object whose "content" is the string.
type tokenName string

// UnmarshalJSON accepts both forms, and null.
func (n *tokenName) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*n = tokenName(s)
		return nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return fmt.Errorf("special token: want a string or an object with \"content\", got %s", b)
	}
	if obj.Content == nil {
		return fmt.Errorf("special token: object has no \"content\": %s", b)
	}
	*n = tokenName(*obj.Content)
	return nil
}

// readSpecialTokens reads an optional config file; a missing file yields no
// tokens.
func readSpecialTokens(path string) (specialTokens, error) {
	var tokens specialTokens
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return tokens, nil
	}
	if err != nil {
		return tokens, fmt.Errorf("clip: read %s: %w", filepath.Base(path), err)
	}
	if err := json.Unmarshal(raw, &tokens); err != nil {
		return tokens, fmt.Errorf("clip: parse %s: %w", path, err)
	}
	return tokens, nil
}
