package clip

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// referencePattern is CLIP's split pattern as transformers compiles it, with
// re.IGNORECASE; CLIPTokenizer applies it with findall to cleaned text.
var referencePattern = regexp.MustCompile(`(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`)

// referenceSplit is findall with the pattern. Go's (?i) puts U+0345 (a mark
// that folds to a letter) into [\p{L}], where Python's regex module leaves it
// out of both [\p{L}] and [^\s\p{L}\p{N}], so that no alternative matches
// it; a space stands in for it here, which matches nothing either.
func referenceSplit(text string) []string {
	return referencePattern.FindAllString(strings.ReplaceAll(text, "\u0345", " "), -1)
}

func splitAll(text string) []string {
	var out []string
	split(text, func(p string) bool {
		out = append(out, p)
		return true
	})
	return out
}

// TestClean checks the clean-up against transformers' BasicTokenizer as
// CLIPTokenizer configures it; the expected strings are what that Python code
// (CPython 3.11, Unicode 14) returns.
func TestClean(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"only spaces", " \t\n ", ""},
		{"lower-case", "A Photo OF a CAT", "a photo of a cat"},
		{"collapse and trim", "  a \t\n b\r\n\nc  ", "a b c"},
		{"Zs spaces", "a\u00a0b\u3000c\u2009d", "a b c d"},
		{"NEL is a control, not a space", "a\u0085b", "ab"},
		{"VT and FF are controls", "a\x0bb\x0cc", "abc"},
		{"information separators are controls", "a\x1cb\x1fc", "abc"},
		{"line and paragraph separators split words", "a\u2028b\u2029c", "a b c"},
		{"format characters dropped", "a\u200bb\u200fc", "abc"},
		{"ZWJ dropped from emoji sequences", "👩\u200d💻", "👩💻"},
		{"NUL and U+FFFD dropped", "a\x00b\ufffdc", "abc"},
		{"invalid UTF-8 dropped", "a\xffb", "ab"},
		{"private use dropped", "\ue000 x", "x"},
		{"unassigned in Unicode 14 dropped", "a\U0001FAE8b\U00031350c", "abc"},
		{"CJK ideographs are words", "東京tower", "東 京 tower"},
		{"Hangul and kana are not split", "한국어 ひらがな", "한국어 ひらがな"},
		{"NFC", "cafe\u0301", "caf\u00e9"},
		{"CJK compatibility ideograph normalised", "\uF900", "\u8C48"},
		{"mark after an ideograph stands alone", "中\u0301", "中 \u0301"},
		{"dotted capital I lowers to two code points", "İstanbul", "i\u0307stanbul"},
		{"final sigma", "ΟΔΟΣ ΟΔΟΣ", "οδος οδος"},
		{"sigma before a letter", "ΣΑ", "σα"},
		{"lone sigma", "Σ", "σ"},
		{"final sigma before case-ignorable", "ΑΣ'", "ας'"},
		{"sigma across case-ignorable", "ΑΣ.Β", "ασ.β"},
		{"final sigma before a combining mark", "ΑΣ\u0301", "ας\u0301"},
		{"titlecase digraph", "ǅ", "ǆ"},
		{"no html unescape", "&amp;", "&amp;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := clean(tt.in); got != tt.want {
				t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
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
		{"punctuation runs through a special token", "!<|endoftext|>!", []string{"!<|", "endoftext", "|>!"}},
		{"ypogegrammeni matches nothing", "a\u0345b !\u0345! \u0345", []string{"a", "b", "!", "!"}},
		{"long s is an s", "it'ſ <|ſtartoftext|>", []string{"it", "'ſ", "<|ſtartoftext|>"}},
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
		text = clean(text)
		if got, want := splitAll(text), referenceSplit(text); !slices.Equal(got, want) {
			t.Fatalf("split(%q) = %q, reference pattern gives %q", text, got, want)
		}
	})
}
