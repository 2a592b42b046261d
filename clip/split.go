package clip

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Special tokens CLIP's split pattern keeps whole.
const (
	startOfText = "<|startoftext|>"
	endOfText   = "<|endoftext|>"
)

// longS is U+017F LATIN SMALL LETTER LONG S, the one character left after
// lower-casing that CLIP's case-insensitive pattern takes for a letter of its
// literals ("s"): "'ſ" is a contraction there, like "'s".
const longS = "ſ"

// split cuts cleaned text (see clean: lower-case, words separated by single
// spaces) into the pieces CLIP's pattern, compiled with re.IGNORECASE,
//
//	<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//
// finds with re.findall, calling yield for each until it returns false. The
// alternatives are tried in order at each position, so a run of punctuation
// swallows a "<|" that starts a special token ("!<|endoftext|>" is "!<|",
// "endoftext", "|>"); the added-token split before clean-up is what normally
// keeps special tokens whole. It is hand-written rather than a regexp because
// it runs on every request; a test checks it against the regexp.
func split(text string, yield func(piece string) bool) {
	i := 0
	for i < len(text) {
		r, size := utf8.DecodeRuneInString(text[i:])
		if isUnmatched(r) {
			i += size
			continue
		}
		n := 0
		switch r {
		case '<':
			n = max(literalLen(text[i:], startOfText), literalLen(text[i:], endOfText))
		case '\'':
			n = contractionLen(text[i:])
		}
		if n == 0 {
			switch {
			case unicode.IsLetter(r):
				n = size
				for i+n < len(text) {
					r2, s2 := utf8.DecodeRuneInString(text[i+n:])
					if !unicode.IsLetter(r2) || isUnmatched(r2) {
						break
					}
					n += s2
				}
			case unicode.IsNumber(r):
				// Digits are split one by one, so "1024" costs four tokens.
				n = size
			default:
				n = size
				for i+n < len(text) {
					r2, s2 := utf8.DecodeRuneInString(text[i+n:])
					if isUnmatched(r2) || unicode.IsLetter(r2) || unicode.IsNumber(r2) {
						break
					}
					n += s2
				}
			}
		}
		if !yield(text[i : i+n]) {
			return
		}
		i += n
	}
}

// ypogegrammeni is U+0345 COMBINING GREEK YPOGEGRAMMENI, a mark (Mn) whose
// case folding is a letter (ι). Under re.IGNORECASE, Python's regex module
// folds both [\p{L}] and its negation [^\s\p{L}\p{N}], so neither matches
// it, no alternative of the pattern does, and findall skips it like a space.
// It is the only character that survives clean for which case folding changes
// the pattern's classes (checked against the regex module for all of them).
const ypogegrammeni = '\u0345'

// isUnmatched reports whether no alternative of the pattern matches r: the
// space between words, and U+0345.
func isUnmatched(r rune) bool { return r == ' ' || r == ypogegrammeni }

// literalLen returns the length in bytes of the prefix of s that lit matches
// case-insensitively, or 0. s is lower-cased already, so the only case variant
// left to accept is a long s for an "s" of lit.
func literalLen(s, lit string) int {
	n := 0
	for j := 0; j < len(lit); j++ {
		switch {
		case n < len(s) && s[n] == lit[j]:
			n++
		case lit[j] == 's' && strings.HasPrefix(s[n:], longS):
			n += len(longS)
		default:
			return 0
		}
	}
	return n
}

// contractionLen returns the length of the contraction ("'s", "'t", "'re",
// "'ve", "'m", "'ll", "'d") at the start of s, or 0. None of them is a prefix
// of another, so the pattern's order does not matter.
func contractionLen(s string) int {
	for _, c := range [...]string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} {
		if n := literalLen(s, c); n > 0 {
			return n
		}
	}
	return 0
}
