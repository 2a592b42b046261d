package clip

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestPadTokenIsSplitOut checks the SDXL tokenizer_2 rule on the small test
// vocabulary: with pad token "!", each "!" is split out of the raw prompt and
// is id 0, where the first tokenizer BPE-encodes "!!!" as one punctuation run.
func TestPadTokenIsSplitOut(t *testing.T) {
	t.Parallel()
	first := loadTestTokenizer(t, "tokenizer")
	second := loadTestTokenizer(t, "tokenizer_2")
	tests := []struct {
		in           string
		first, secnd []int
	}{
		{"a!!!", []int{idAEnd, idBang, idBang, idBangEnd}, []int{idAEnd, idBang, idBang, idBang}},
		{"a ! a", []int{idAEnd, idBangEnd, idAEnd}, []int{idAEnd, idBang, idAEnd}},
		// The split comes before clean-up, so a "!" hidden by a format
		// character is still one; after clean-up the first tokenizer sees "!!".
		{"!\u200b!", []int{idBang, idBangEnd}, []int{idBang, idBang}},
	}
	for _, tt := range tests {
		if got := first.Tokens(tt.in); !slices.Equal(got, tt.first) {
			t.Errorf("tokenizer Tokens(%q) = %v, want %v", tt.in, got, tt.first)
		}
		if got := second.Tokens(tt.in); !slices.Equal(got, tt.secnd) {
			t.Errorf("tokenizer_2 Tokens(%q) = %v, want %v", tt.in, got, tt.secnd)
		}
	}
}

// TestAddedTokenRules follows PreTrainedTokenizer.tokenize's handling of an
// added token's rstrip and single_word flags, on a vocabulary where "!" is id
// 3 and "!</w>" is missing (so a "!" that is not split out becomes unk, 5).
func TestAddedTokenRules(t *testing.T) {
	t.Parallel()
	merges := [][2]string{{"h", "i</w>"}}
	tests := []struct {
		name  string
		added AddedToken
		in    string
		want  []int
	}{
		{"plain", AddedToken{Content: "!", ID: 3}, "hi!hi", []int{2, 3, 2}},
		{"single word touching the left is not split out", AddedToken{Content: "!", ID: 3, SingleWord: true}, "hi!hi", []int{2, 5, 2}},
		{"single word between spaces is split out", AddedToken{Content: "!", ID: 3, SingleWord: true}, "hi ! hi", []int{2, 3, 2}},
		{"rstrip makes it touch the right", AddedToken{Content: "!", ID: 3, SingleWord: true, RStrip: true}, "hi ! hi", []int{2, 5, 2}},
		{"longest match wins", AddedToken{Content: "!!", ID: 0}, "hi!!!", []int{2, 0, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			added := []AddedToken{tt.added}
			if tt.added.Content != "!" {
				added = append(added, AddedToken{Content: "!", ID: 3})
			}
			tok, err := NewWithOptions(smallVocab(), merges, Options{PadToken: "<pad>", AddedTokens: added})
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Tokens(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("Tokens(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestAddedTokenErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		added AddedToken
		want  string
	}{
		{AddedToken{Content: "", ID: 1}, "empty content"},
		{AddedToken{Content: "x", ID: 10}, "outside the vocabulary"},
		{AddedToken{Content: "x", ID: -1}, "outside the vocabulary"},
	} {
		_, err := NewWithOptions(smallVocab(), nil, Options{AddedTokens: []AddedToken{tt.added}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewWithOptions with %+v: error %v, want one containing %q", tt.added, err, tt.want)
		}
	}
}

func TestLoadAddedTokensDecoder(t *testing.T) {
	t.Parallel()
	tok, err := Load(copyTokenizerDir(t, map[string]string{
		configFile: `{"added_tokens_decoder": {"0": {"content": "!", "lstrip": false, "rstrip": false, "single_word": false, "special": true}}}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Tokens("a!!!"), []int{idAEnd, idBang, idBang, idBang}; !slices.Equal(got, want) {
		t.Errorf("Tokens(a!!!) = %v, want %v: the added token is split out", got, want)
	}
	if tok.PadID() != idEOS {
		t.Errorf("PadID = %d, want %d", tok.PadID(), idEOS)
	}
	for _, tt := range []struct{ config, want string }{
		{`{"added_tokens_decoder": {"x": {"content": "!"}}}`, `key "x"`},
		{`{"added_tokens_decoder": {"0": {"content": ""}}}`, "no content"},
		{`{"added_tokens_decoder": {"99999": {"content": "!"}}}`, "outside the vocabulary"},
		{`{"additional_special_tokens": ["<nope>"]}`, `additional special token "<nope>"`},
	} {
		_, err := Load(copyTokenizerDir(t, map[string]string{configFile: tt.config}))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load with %s: error %v, want one containing %q", tt.config, err, tt.want)
		}
	}
}

func TestSymbol(t *testing.T) {
	t.Parallel()
	tok := loadTestTokenizer(t, "tokenizer_2")
	for _, tt := range []struct {
		id   int
		want string
		ok   bool
	}{
		{idCat, "cat</w>", true},
		{idBang, "!", true},
		{idEOS, "<|endoftext|>", true},
		{testVocabSz, "", false},
		{-1, "", false},
	} {
		if got, ok := tok.Symbol(tt.id); got != tt.want || ok != tt.ok {
			t.Errorf("Symbol(%d) = %q, %v; want %q, %v", tt.id, got, ok, tt.want, tt.ok)
		}
	}
}

// TestHostileUnicode checks inputs a JSON request can carry tokenize like the
// text that remains once BasicTokenizer's clean-up has dropped what it drops.
func TestHostileUnicode(t *testing.T) {
	t.Parallel()
	tok := loadTestTokenizer(t, "tokenizer_2")
	var loneSurrogate string
	if err := json.Unmarshal([]byte(`"a\ud800a"`), &loneSurrogate); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, same string }{
		{loneSurrogate, "aa"},
		{"a\xed\xa0\x80a", "aa"}, // a surrogate encoded in UTF-8: invalid
		{"a\x00a", "aa"},
		{"\u202ea\u202c \u200fa\u200e", "a a"},
		{"👩\u200d👩\u200d👧", "👩👩👧"},
		{"a\U000E0001\U000E0041a", "aa"}, // tag characters (Cf)
		{"\ufeffa", "a"},
	}
	for _, tt := range tests {
		got, _ := tok.Encode(tt.in)
		want, _ := tok.Encode(tt.same)
		if !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v as for %q", tt.in, got, want, tt.same)
		}
	}
}
