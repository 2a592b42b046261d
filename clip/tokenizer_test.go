package clip

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Ids in testdata/tokenizer. The vocabulary is laid out like CLIP's: the 256
// byte symbols, their end-of-word forms, the merge results, then the two special
// tokens, so "!" is 0 and "a</w>" is 320 as in the real file.
const (
	idBang      = 0   // "!"
	idA         = 64  // "a"
	idC         = 66  // "c"
	idD         = 67  // "d"
	idE         = 68  // "e"
	idF         = 69  // "f"
	idO         = 78  // "o"
	idT         = 83  // "t"
	idApos      = 6   // "'"
	idBangEnd   = 256 // "!</w>"
	idZeroEnd   = 271 // "0</w>"
	idOneEnd    = 272 // "1</w>"
	idTwoEnd    = 273 // "2</w>"
	idFourEnd   = 275 // "4</w>"
	idAEnd      = 320 // "a</w>"
	idGEnd      = 326 // "g</w>"
	idHEnd      = 327 // "h</w>"
	idYEnd      = 344 // "y</w>"
	idCat       = 513 // "cat</w>"
	idHo        = 514 // "ho</w>"
	idPhoto     = 518 // "photo</w>"
	idOf        = 519 // "of</w>"
	idTh        = 520 // "th"
	idThe       = 521 // "the</w>"
	idEAcute    = 522 // "Ã©</w>", the bytes of "é"
	idRe        = 523 // "re</w>"
	idApostS    = 524 // "'s</w>"
	idBOS       = 525
	idEOS       = 526
	testVocabSz = 527
)

func loadTestTokenizer(t testing.TB, dir string) *Tokenizer {
	t.Helper()
	tok, err := Load("testdata/" + dir)
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	return tok
}

func TestTokens(t *testing.T) {
	t.Parallel()
	tok := loadTestTokenizer(t, "tokenizer")
	tests := []struct {
		name string
		in   string
		want []int
	}{
		{"merged words", "a photo of a cat", []int{idAEnd, idPhoto, idOf, idAEnd, idCat}},
		{"normalised", "  A\tPHOTO\n\nOf a   Cat ", []int{idAEnd, idPhoto, idOf, idAEnd, idCat}},
		{"no merges apply", "dog", []int{idD, idO, idGEnd}},
		{"lowest rank wins", "tho", []int{idT, idHo}},            // "h o</w>" (rank 2) beats "t h" (rank 8)
		{"end-of-word blocks a merge", "th", []int{idT, idHEnd}}, // "t h" exists, "t h</w>" does not
		{"merges chain", "they", []int{idTh, idE, idYEnd}},       // "th e</w>" needs e to end the word
		{"contraction", "cat's", []int{idCat, idApostS}},
		{"contraction re", "they're", []int{idTh, idE, idYEnd, idApos, idRe}},
		{"digits", "1024", []int{idOneEnd, idZeroEnd, idTwoEnd, idFourEnd}},
		{"multi-byte letter", "café", []int{idC, idA, idF, idEAcute}},
		{"punctuation run", "!!!", []int{idBang, idBang, idBangEnd}},
		{"control byte dropped", "a\x01", []int{idAEnd}},
		{"non-breaking space is a space", "a\u00a0a", []int{idAEnd, idAEnd}},
		{"merge result missing from vocabulary is unk", "xy", []int{idEOS}},
		{"special tokens", "a<|startoftext|><|endoftext|>", []int{idAEnd, idBOS, idEOS}},
		{"special after punctuation", "!<|endoftext|>", []int{idBangEnd, idEOS}},
		{"special token split before clean-up", "a<|endoftext|>a", []int{idAEnd, idEOS, idAEnd}},
		{"special token formed by clean-up", "<|endo\u200bftext|>", []int{idEOS}},
		{"empty", "", nil},
		{"only whitespace", " \n\t", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tok.Tokens(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("Tokens(%q) = %v, want %v", tt.in, got, tt.want)
			}
			// A second call is served from the cache and must agree.
			if got := tok.Tokens(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("cached Tokens(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dir string
		pad int64
	}{
		{"tokenizer", idEOS},
		{"tokenizer_2", idBang},
	} {
		tok := loadTestTokenizer(t, tc.dir)
		words := func(n int) string { return strings.Repeat("a ", n) }
		tests := []struct {
			name          string
			in            string
			wantTokens    int // how many a</w> ids follow BOS
			wantTruncated bool
		}{
			{"empty", "", 0, false},
			{"short", words(5), 5, false},
			{"74 tokens", words(74), 74, false},
			{"exactly 75 tokens", words(75), 75, false},
			{"76 tokens", words(76), 75, true},
			{"far too long", words(1000), 75, true},
		}
		for _, tt := range tests {
			t.Run(tc.dir+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ids, truncated := tok.Encode(tt.in)
				if len(ids) != MaxLength {
					t.Fatalf("len(ids) = %d, want %d", len(ids), MaxLength)
				}
				if truncated != tt.wantTruncated {
					t.Errorf("truncated = %v, want %v", truncated, tt.wantTruncated)
				}
				want := []int64{idBOS}
				for range tt.wantTokens {
					want = append(want, idAEnd)
				}
				want = append(want, idEOS)
				for len(want) < MaxLength {
					want = append(want, tc.pad)
				}
				if !slices.Equal(ids, want) {
					t.Errorf("Encode = %v, want %v", ids, want)
				}
				if tt.wantTruncated && ids[MaxLength-1] != idEOS {
					t.Errorf("ids[76] = %d, want EOS %d", ids[MaxLength-1], idEOS)
				}
			})
		}
	}
}

func TestEncodeTruncatesInsideAWord(t *testing.T) {
	t.Parallel()
	tok := loadTestTokenizer(t, "tokenizer_2")
	// 74 tokens, then "dog" (three tokens): only "d" fits.
	ids, truncated := tok.Encode(strings.Repeat("a ", 74) + "dog")
	if !truncated {
		t.Error("truncated = false, want true")
	}
	if ids[75] != idD || ids[76] != idEOS {
		t.Errorf("ids[75:] = %v, want [%d %d]", ids[75:], idD, idEOS)
	}
}

func TestAccessors(t *testing.T) {
	t.Parallel()
	tok := loadTestTokenizer(t, "tokenizer")
	if tok.BOS() != idBOS || tok.EOS() != idEOS || tok.PadID() != idEOS || tok.VocabSize() != testVocabSz {
		t.Errorf("BOS, EOS, PadID, VocabSize = %d, %d, %d, %d; want %d, %d, %d, %d",
			tok.BOS(), tok.EOS(), tok.PadID(), tok.VocabSize(), idBOS, idEOS, idEOS, testVocabSz)
	}
	if tok2 := loadTestTokenizer(t, "tokenizer_2"); tok2.PadID() != idBang {
		t.Errorf("tokenizer_2 PadID = %d, want %d", tok2.PadID(), idBang)
	}
}

// smallVocab is a hand-made vocabulary with only a few symbols, to check what
// happens to bytes the vocabulary lacks.
func smallVocab() map[string]int {
	return map[string]int{"h": 0, "i</w>": 1, "hi</w>": 2, "!": 3, "<|startoftext|>": 4, "<|endoftext|>": 5, "<pad>": 9}
}

func TestNew(t *testing.T) {
	t.Parallel()
	merges := [][2]string{{"h", "i</w>"}}
	tok, err := New(smallVocab(), merges, "<pad>")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Tokens("hi hz"), []int{2, 0, 5}; !slices.Equal(got, want) {
		t.Errorf("Tokens = %v, want %v (unknown symbols map to <|endoftext|>)", got, want)
	}
	if tok.PadID() != 9 || tok.VocabSize() != 10 {
		t.Errorf("PadID, VocabSize = %d, %d; want 9, 10", tok.PadID(), tok.VocabSize())
	}
	if tok, err := New(smallVocab(), merges, ""); err != nil || tok.PadID() != 5 {
		t.Errorf("New with empty pad: PadID = %v, err = %v; want 5 (EOS)", tok, err)
	}

	errTests := []struct {
		name   string
		vocab  map[string]int
		merges [][2]string
		pad    string
		want   string
	}{
		{"empty vocabulary", map[string]int{}, merges, "", "empty vocabulary"},
		{"no BOS", without(smallVocab(), startOfText), merges, "", "start-of-text"},
		{"no EOS", without(smallVocab(), endOfText), merges, "", "end-of-text"},
		{"unknown pad", smallVocab(), merges, "<nope>", `pad token "<nope>"`},
		{"negative id", with(smallVocab(), "x", -1), merges, "", "negative id"},
		{"empty merge side", smallVocab(), [][2]string{{"h", ""}}, "", "empty side"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.vocab, tt.merges, tt.pad)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func without(m map[string]int, key string) map[string]int { delete(m, key); return m }
func with(m map[string]int, key string, v int) map[string]int {
	m[key] = v
	return m
}

func TestConcurrentEncode(t *testing.T) {
	t.Parallel()
	tok := loadTestTokenizer(t, "tokenizer")
	prompts := []string{"a photo of a cat", "the dog's 1024 cafés!!", "they're tho", "xy <|endoftext|>"}
	want := make([][]int64, len(prompts))
	for i, p := range prompts {
		want[i], _ = tok.Encode(p)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p := (g + i) % len(prompts)
				if got, _ := tok.Encode(prompts[p]); !slices.Equal(got, want[p]) {
					errs <- fmt.Errorf("goroutine %d: Encode(%q) = %v, want %v", g, prompts[p], got, want[p])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	tok, err := New(smallVocab(), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxCachedWords + 10 {
		tok.Tokens(letters(i)) // a new single-piece word each time
	}
	tok.cache.mu.RLock()
	n := len(tok.cache.words)
	tok.cache.mu.RUnlock()
	if n > maxCachedWords {
		t.Errorf("cache holds %d words, bound is %d", n, maxCachedWords)
	}
}

// letters spells n in base 26 with the letters a..z, so every n gives a
// different word that the splitter keeps in one piece.
func letters(n int) string {
	b := []byte{byte('a' + n%26)}
	for n /= 26; n > 0; n /= 26 {
		b = append(b, byte('a'+n%26))
	}
	return string(b)
}

func FuzzEncode(f *testing.F) {
	tok := loadTestTokenizer(f, "tokenizer_2")
	for _, s := range []string{"", "a photo of a cat", strings.Repeat("cat's ", 60), "<|endoftext|>", "\xff\xfe", "ωμέγα 東京 🐱", "1024x1024!!!",
		"\x00", "\xed\xa0\x80 lone surrogate", "\u202eRTL\u200f marks", "👩\u200d👩\u200d👧 family", "ΟΔΟΣ İ ſ'ſ", "!<|endoftext|>!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ids, truncated := tok.Encode(text)
		if len(ids) != MaxLength {
			t.Fatalf("len(ids) = %d", len(ids))
		}
		if ids[0] != int64(tok.BOS()) {
			t.Fatalf("ids[0] = %d, want BOS", ids[0])
		}
		for i, id := range ids {
			if id < 0 || id >= int64(tok.VocabSize()) {
				t.Fatalf("ids[%d] = %d, outside [0, %d)", i, id, tok.VocabSize())
			}
		}
		n := len(tok.Tokens(text))
		if truncated != (n > MaxLength-2) {
			t.Fatalf("truncated = %v with %d tokens", truncated, n)
		}
		eos := min(n, MaxLength-2) + 1
		if ids[eos] != int64(tok.EOS()) {
			t.Fatalf("ids[%d] = %d, want EOS", eos, ids[eos])
		}
		for _, id := range ids[eos+1:] {
			if id != int64(tok.PadID()) {
				t.Fatalf("padding holds %d, want %d", id, tok.PadID())
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	tok := loadTestTokenizer(b, "tokenizer")
	prompt := "A photo of a cat sitting on the dog's 1024 cafés, they're tho!!! " +
		"highly detailed, 8k, trending on artstation"
	b.ReportAllocs()
	for b.Loop() {
		tok.Encode(prompt)
	}
}
