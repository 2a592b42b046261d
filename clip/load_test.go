package clip

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyTokenizerDir copies testdata/tokenizer into a temporary folder and
// applies edits: a file name mapped to new contents, or to "" to delete it.
func copyTokenizerDir(t *testing.T, edits map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{vocabFile, mergesFile, configFile, specialTokensFile} {
		raw, err := os.ReadFile(filepath.Join("testdata", "tokenizer", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, contents := range edits {
		path := filepath.Join(dir, name)
		if contents == "" {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(path, []byte(contents), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadPadToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		edits map[string]string
		want  int
	}{
		{"from the folder as shipped", nil, idEOS},
		{"no config files", map[string]string{configFile: "", specialTokensFile: ""}, idEOS},
		{"config string form", map[string]string{specialTokensFile: "", configFile: `{"pad_token": "!"}`}, idBang},
		{"config object form", map[string]string{specialTokensFile: "", configFile: `{"pad_token": {"content": "!", "lstrip": false}}`}, idBang},
		{"special tokens map alone", map[string]string{configFile: "", specialTokensFile: `{"pad_token": {"content": "!"}}`}, idBang},
		{"special tokens map wins", map[string]string{configFile: `{"pad_token": "!"}`, specialTokensFile: `{"pad_token": "<|endoftext|>"}`}, idEOS},
		{"null pad keeps default", map[string]string{specialTokensFile: "", configFile: `{"pad_token": null}`}, idEOS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok, err := Load(copyTokenizerDir(t, tt.edits))
			if err != nil {
				t.Fatal(err)
			}
			if tok.PadID() != tt.want {
				t.Errorf("PadID = %d, want %d", tok.PadID(), tt.want)
			}
			if ids, _ := tok.Encode("a"); ids[MaxLength-1] != int64(tt.want) {
				t.Errorf("last id = %d, want pad %d", ids[MaxLength-1], tt.want)
			}
		})
	}
}

func TestLoadUnkToken(t *testing.T) {
	t.Parallel()
	tok, err := Load(copyTokenizerDir(t, map[string]string{specialTokensFile: "", configFile: `{"unk_token": {"content": "!"}}`}))
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Tokens("xy"); len(got) != 1 || got[0] != idBang {
		t.Errorf(`Tokens("xy") = %v, want [%d] (the configured unk)`, got, idBang)
	}
}

func TestLoadMergesFormat(t *testing.T) {
	t.Parallel()
	// No version line, a blank line and trailing spaces are all accepted.
	tok, err := Load(copyTokenizerDir(t, map[string]string{mergesFile: "a t</w>\n\nc at</w>  \n"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Tokens("cat"); len(got) != 1 || got[0] != idCat {
		t.Errorf(`Tokens("cat") = %v, want [%d]`, got, idCat)
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		edits    map[string]string
		contains []string
		notExist bool
	}{
		{"missing vocab", map[string]string{vocabFile: ""}, []string{"vocab.json"}, true},
		{"missing merges", map[string]string{mergesFile: ""}, []string{"merges.txt"}, true},
		{"malformed vocab", map[string]string{vocabFile: `{"a": 1,`}, []string{"parse", "vocab.json"}, false},
		{"vocab of wrong type", map[string]string{vocabFile: `["a", "b"]`}, []string{"parse", "vocab.json"}, false},
		{"merge line with three symbols", map[string]string{mergesFile: "#version: 0.2\na t</w>\nc a t\n"}, []string{"merges.txt", "line 3"}, false},
		{"merges file with only the version", map[string]string{mergesFile: "#version: 0.2\n"}, []string{"merges.txt", "no merges"}, false},
		{"malformed config", map[string]string{configFile: `{"pad_token": `}, []string{"parse", "tokenizer_config.json"}, false},
		{"pad token of wrong type", map[string]string{configFile: `{"pad_token": 7}`}, []string{"tokenizer_config.json", "special token"}, false},
		{"pad object without content", map[string]string{configFile: `{"pad_token": {"lstrip": true}}`}, []string{"tokenizer_config.json", "content"}, false},
		{"malformed special tokens map", map[string]string{specialTokensFile: `nope`}, []string{"parse", "special_tokens_map.json"}, false},
		{"pad token not in vocabulary", map[string]string{specialTokensFile: `{"pad_token": "<pad>"}`}, []string{`pad token "<pad>"`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(copyTokenizerDir(t, tt.edits))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tt.notExist)
			}
		})
	}
}

func TestLoadMissingFolder(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "absent"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing folder: %v, want fs.ErrNotExist", err)
	}
}
