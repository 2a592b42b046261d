package clip

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// clean is the text clean-up that transformers' CLIPTokenizer applies to each
// piece of a prompt between added tokens when ftfy is not installed, the way
// diffusers runs it: BasicTokenizer(strip_accents=False, do_split_on_punc=False)
// followed by " ".join. In order:
//
//  1. drop U+0000, U+FFFD and control, format, surrogate, private-use and
//     unassigned characters (categories C*, Unicode 14 as in CPython 3.11),
//     except \t \n \r, which become spaces like every Zs character;
//  2. put spaces around CJK ideographs, so each is a word of its own;
//  3. normalise to NFC;
//  4. split at whitespace (Python's str.split), lower-case each word with
//     Python's str.lower, and join the words with one ASCII space.
//
// The result holds no whitespace other than single spaces between words.
func clean(text string) string {
	if s, ok := cleanASCII(text); ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(text) + 8)
	for _, r := range text {
		if r < utf8.RuneSelf {
			switch {
			case r == ' ' || r == '\t' || r == '\n' || r == '\r':
				b.WriteByte(' ')
			case r < ' ' || r == 0x7f:
			default:
				b.WriteByte(byte(r))
			}
			continue
		}
		switch {
		case isDropped(r):
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		case isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	s := norm.NFC.String(b.String())
	b.Reset()
	for word := range strings.FieldsFuncSeq(s, isPythonSpace) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		writeLower(&b, word)
	}
	return b.String()
}

// cleanASCII is clean for text that is all ASCII, which is most prompts: no
// NFC, CJK or Unicode case rules apply, so one pass does. ok is false when text
// holds a non-ASCII byte.
func cleanASCII(text string) (s string, ok bool) {
	var b strings.Builder
	b.Grow(len(text))
	pendingSpace := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c >= utf8.RuneSelf:
			return "", false
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			pendingSpace = b.Len() > 0
		case c < ' ' || c == 0x7f:
			// Dropped controls join their neighbours: "a\x0bb" is "ab".
		default:
			if pendingSpace {
				b.WriteByte(' ')
				pendingSpace = false
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// isDropped reports whether the clean-up removes r (see droppedRanges).
func isDropped(r rune) bool {
	i := sort.Search(len(droppedRanges), func(i int) bool { return droppedRanges[i][1] >= r })
	return i < len(droppedRanges) && droppedRanges[i][0] <= r
}

// isCJK reports whether r is in one of the CJK ideograph blocks that
// BasicTokenizer._is_chinese_char lists (Hangul, kana and CJK punctuation are
// not among them).
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) ||
		(r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) ||
		(r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) ||
		(r >= 0x2F800 && r <= 0x2FA1F)
}

// isPythonSpace is Python's str.isspace, which str.split(), str.strip() and
// their kin use: Unicode White_Space and the information separators
// U+001C..U+001F. (In clean, only ' ', U+2028 and U+2029 are left by then.)
func isPythonSpace(r rune) bool {
	return r == ' ' || r == '\u2028' || r == '\u2029' || unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}
