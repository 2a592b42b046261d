package clip

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// writeLower writes Python's word.lower() to b. Python lower-cases with the
// full Unicode mappings, which differ from Go's per-rune [unicode.ToLower] in
// two places only (checked against CPython 3.11 for every assigned code point
// that survives clean): U+0130 'İ' becomes two code points, "i" and U+0307,
// and a capital sigma at the end of a word becomes 'ς' (U+03C2) rather than
// 'σ'. The sigma rule looks at the whole word, as Python applies it to the
// string it is given, and BasicTokenizer gives it one whitespace-separated word.
func writeLower(b *strings.Builder, word string) {
	for i, r := range word {
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
			continue
		}
		switch r {
		case 'İ':
			b.WriteString("i\u0307")
		case 'Σ':
			if finalSigma(word[:i], word[i+len("Σ"):]) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
}

// finalSigma reports whether a capital sigma between before and after is in
// the Final_Sigma context of Unicode's SpecialCasing.txt, as CPython tests it:
// a cased letter before it, and none after it, skipping case-ignorable
// characters both ways.
func finalSigma(before, after string) bool {
	cased := false
	for before != "" {
		r, size := utf8.DecodeLastRuneInString(before)
		before = before[:len(before)-size]
		if !isCaseIgnorable(r) {
			cased = isCased(r)
			break
		}
	}
	if !cased {
		return false
	}
	for _, r := range after {
		if !isCaseIgnorable(r) {
			return !isCased(r)
		}
	}
	return true
}

// isCased is Unicode's Cased property: Lu, Ll, Lt, Other_Lowercase or
// Other_Uppercase.
func isCased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// isCaseIgnorable is Unicode's Case_Ignorable property: Mn, Me, Cf, Lm, Sk, and
// the characters whose Word_Break is MidLetter, MidNumLet or Single_Quote.
func isCaseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
