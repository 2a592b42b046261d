package clip

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Special tokens the CLIP pattern keeps whole.
const (
	startOfText = "<|startoftext|>"
	endOfText   = "<|endoftext|>"
)

// isSpace reports whether r counts as whitespace for CLIP's cleaning step. Python's
// str.isspace (which `\s` follows in the reference) also accepts the ASCII
// information separators U+001C..U+001F, which unicode.IsSpace does not.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// normalize is the reference's whitespace_clean followed by lower(): runs of
// whitespace become one ASCII space, the ends are trimmed, letters are
// lower-cased. Afterwards the only whitespace left is ' ', which keeps the
// splitter simple.
func normalize(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	var b strings.Builder
	b.Grow(len(text))
	pendingSpace := false
	for _, r := range text {
		if isSpace(r) {
			pendingSpace = b.Len() > 0
			continue
		}
		if pendingSpace {
			b.WriteByte(' ')
			pendingSpace = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// split cuts normalized text into the pieces the CLIP pattern
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// would find, calling yield for each until it returns false. Like the reference, which cuts the text at
// each special token before it applies the pattern, a special token is kept whole
// even when punctuation runs into it ("!<|endoftext|>" is "!" then the token).
// It is hand-written rather than a regexp because it runs on every request; a
// test checks it against the regexp.
func split(text string, yield func(piece string) bool) {
	i := 0
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == ' ':
			i += size
		case r == '<' && strings.HasPrefix(text[i:], startOfText):
			if !yield(text[i : i+len(startOfText)]) {
				return
			}
			i += len(startOfText)
		case r == '<' && strings.HasPrefix(text[i:], endOfText):
			if !yield(text[i : i+len(endOfText)]) {
				return
			}
			i += len(endOfText)
		case r == '\'' && contractionLen(text[i+1:]) > 0:
			n := 1 + contractionLen(text[i+1:])
			if !yield(text[i : i+n]) {
				return
			}
			i += n
		case unicode.IsLetter(r):
			j := i + size
			for j < len(text) {
				r2, s2 := utf8.DecodeRuneInString(text[j:])
				if !unicode.IsLetter(r2) {
					break
				}
				j += s2
			}
			if !yield(text[i:j]) {
				return
			}
			i = j
		case unicode.IsNumber(r):
			// Digits are split one by one, so "1024" costs four tokens.
			if !yield(text[i : i+size]) {
				return
			}
			i += size
		default:
			j := i + size
			for j < len(text) {
				r2, s2 := utf8.DecodeRuneInString(text[j:])
				if r2 == ' ' || unicode.IsLetter(r2) || unicode.IsNumber(r2) || startsWithSpecial(text[j:]) {
					break
				}
				j += s2
			}
			if !yield(text[i:j]) {
				return
			}
			i = j
		}
	}
}

// startsWithSpecial reports whether s begins with a special token.
func startsWithSpecial(s string) bool {
	return strings.HasPrefix(s, startOfText) || strings.HasPrefix(s, endOfText)
}

// contractionLen returns the length of the contraction suffix (after the
// apostrophe) at the start of s, or 0. The order follows the pattern's
// alternation; none of the suffixes is a prefix of another, so order does not
// change the result.
func contractionLen(s string) int {
	for _, c := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		if strings.HasPrefix(s, c) {
			return len(c)
		}
	}
	return 0
}
