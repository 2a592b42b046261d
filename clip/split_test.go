package clip

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// referencePattern is CLIP's split pattern as transformers writes it. The
// reference first cuts the text at special tokens and applies the pattern to
// each chunk; referenceSplit does the same.
var referencePattern = regexp.MustCompile(`<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`)

func referenceSplit(text string) []string {
	var out []string
	for text != "" {
		cut, special := len(text), ""
		for _, s := range []string{startOfText, endOfText} {
			if i := strings.Index(text, s); i >= 0 && i < cut {
				cut, special = i, s
			}
		}
		out = append(out, referencePattern.FindAllString(text[:cut], -1)...)
		if special == "" {
			break
		}
		out = append(out, special)
		text = text[cut+len(special):]
	}
	return out
}

func splitAll(text string) []string {
	var out []string
	split(text, func(p string) bool {
		out = append(out, p)
		return true
	})
	return out
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"only spaces", " \t\n ", ""},
		{"lower-case", "A Photo OF a CAT", "a photo of a cat"},
		{"collapse and trim", "  a \t\n b\r\n\nc  ", "a b c"},
		{"unicode spaces", "a\u00a0b\u3000c\u2009d\u0085e", "a b c d e"},
		{"information separators", "a\x1cb\x1fc", "a b c"},
		{"non-ASCII letters", "ÉCOLE Ωμέγα", "école ωμέγα"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"no html unescape", "&amp;", "&amp;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := normalize(tt.in); got != tt.want {
				t.Errorf("normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"words", "a photo of a cat", []string{"a", "photo", "of", "a", "cat"}},
		{"contractions", "it's they're we've i'm you'll he'd don't", []string{"it", "'s", "they", "'re", "we", "'ve", "i", "'m", "you", "'ll", "he", "'d", "don", "'t"}},
		{"contraction at start", "'sa", []string{"'s", "a"}},
		{"apostrophe run is punctuation", "''s", []string{"''", "s"}},
		{"trailing apostrophe", "dogs'", []string{"dogs", "'"}},
		{"digits one by one", "1024x768", []string{"1", "0", "2", "4", "x", "7", "6", "8"}},
		{"non-ASCII digits", "٣²", []string{"٣", "²"}},
		{"punctuation runs", "hello!!! (a,b)...", []string{"hello", "!!!", "(", "a", ",", "b", ")..."}},
		{"non-ASCII letters", "café ωμέγα 東京", []string{"café", "ωμέγα", "東京"}},
		{"combining mark is not a letter", "e\u0301", []string{"e", "\u0301"}},
		{"special tokens", "<|startoftext|>a<|endoftext|>", []string{startOfText, "a", endOfText}},
		{"punctuation stops at special", "!<|endoftext|>!", []string{"!", endOfText, "!"}},
		{"partial special", "<|endof", []string{"<|", "endof"}},
		{"emoji", "cat🐱!", []string{"cat", "🐱!"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := splitAll(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("split(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if ref := referenceSplit(tt.in); !slices.Equal(got, ref) {
				t.Errorf("split(%q) = %q, reference pattern gives %q", tt.in, got, ref)
			}
		})
	}
}

func TestSplitStops(t *testing.T) {
	t.Parallel()
	var got []string
	split("a b c d", func(p string) bool {
		got = append(got, p)
		return len(got) < 2
	})
	if want := []string{"a", "b"}; !slices.Equal(got, want) {
		t.Fatalf("split stopped after %q, want %q", got, want)
	}
}

// FuzzSplit checks the hand-written splitter against the regexp it replaces.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"a photo of a cat", "it's 1024!!", "!<|endoftext|>'s", "ωμέγα\u0301'll", "<|startoftext|", "\xff'd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		text = normalize(text)
		if got, want := splitAll(text), referenceSplit(text); !slices.Equal(got, want) {
			t.Fatalf("split(%q) = %q, reference pattern gives %q", text, got, want)
		}
	})
}
