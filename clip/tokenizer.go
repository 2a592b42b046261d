package clip

import (
	"errors"
	"fmt"
)

// MaxLength is the number of ids a CLIP text encoder takes: BOS, up to 75
// tokens, EOS, then padding.
const MaxLength = 77

// maxMerges is how many merges the reference reads from merges.txt
// (49152 - 256 - 2): together with 256 byte symbols, their 256 end-of-word forms
// and the two special tokens it fills CLIP's 49408-entry vocabulary. Later lines,
// if a file has any, are ignored there and so here.
const maxMerges = 49152 - 256 - 2

// Tokenizer turns prompts into CLIP token ids. It is immutable after
// construction apart from an internal, lock-guarded cache, and safe for
// concurrent use.
type Tokenizer struct {
	vocab     map[string]int
	ranks     map[pair]int
	special   map[string]int
	bos       int
	eos       int
	pad       int
	unk       int
	vocabSize int

	cache wordCache
}

// New builds a Tokenizer from a vocabulary (symbol → id, as in vocab.json) and
// merges in rank order (as in merges.txt, without the version line). padToken
// names the padding symbol; "" means the end-of-text token. The vocabulary must
// hold "<|startoftext|>", "<|endoftext|>" and padToken.
func New(vocab map[string]int, merges [][2]string, padToken string) (*Tokenizer, error) {
	return newTokenizer(vocab, merges, padToken, endOfText)
}

func newTokenizer(vocab map[string]int, merges [][2]string, padToken, unkToken string) (*Tokenizer, error) {
	if len(vocab) == 0 {
		return nil, errors.New("clip: empty vocabulary")
	}
	t := &Tokenizer{
		vocab: make(map[string]int, len(vocab)),
		ranks: make(map[pair]int, len(merges)),
	}
	for s, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("clip: vocabulary entry %q has negative id %d", s, id)
		}
		t.vocab[s] = id
		t.vocabSize = max(t.vocabSize, id+1)
	}
	for i, m := range merges {
		if m[0] == "" || m[1] == "" {
			return nil, fmt.Errorf("clip: merge %d (%q %q) has an empty side", i, m[0], m[1])
		}
		// A repeated merge keeps its last rank, as a Python dict built from the
		// list would.
		t.ranks[pair{m[0], m[1]}] = i
	}
	lookup := func(role, symbol string) (int, error) {
		id, ok := t.vocab[symbol]
		if !ok {
			return 0, fmt.Errorf("clip: %s %q is not in the vocabulary", role, symbol)
		}
		return id, nil
	}
	var err error
	if t.bos, err = lookup("start-of-text token", startOfText); err != nil {
		return nil, err
	}
	if t.eos, err = lookup("end-of-text token", endOfText); err != nil {
		return nil, err
	}
	if padToken == "" {
		padToken = endOfText
	}
	if t.pad, err = lookup("pad token", padToken); err != nil {
		return nil, err
	}
	if unkToken == "" {
		unkToken = endOfText
	}
	if t.unk, err = lookup("unknown token", unkToken); err != nil {
		return nil, err
	}
	t.special = map[string]int{startOfText: t.bos, endOfText: t.eos}
	return t, nil
}

// Encode returns exactly MaxLength ids for text: BOS, its tokens, EOS, then the
// pad id. When the text has more than MaxLength-2 tokens the extra ones are
// dropped, EOS still closes the sequence, and truncated is true so the caller
// can warn that part of the prompt was ignored.
func (t *Tokenizer) Encode(text string) (ids []int64, truncated bool) {
	ids = make([]int64, 0, MaxLength)
	ids = append(ids, int64(t.bos))
	t.tokens(text, func(id int) bool {
		if len(ids) == MaxLength-1 {
			truncated = true
			return false
		}
		ids = append(ids, int64(id))
		return true
	})
	ids = append(ids, int64(t.eos))
	for len(ids) < MaxLength {
		ids = append(ids, int64(t.pad))
	}
	return ids, truncated
}

// Tokens returns the BPE ids of text without BOS, EOS or padding, and without
// truncation.
func (t *Tokenizer) Tokens(text string) []int {
	var out []int
	t.tokens(text, func(id int) bool {
		out = append(out, id)
		return true
	})
	return out
}

// tokens feeds the ids of text to yield until yield returns false.
func (t *Tokenizer) tokens(text string, yield func(id int) bool) {
	split(normalize(text), func(piece string) bool {
		for _, id := range t.pieceIDs(piece) {
			if !yield(id) {
				return false
			}
		}
		return true
	})
}

// BOS returns the id of the start-of-text token.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the id of the end-of-text token.
func (t *Tokenizer) EOS() int { return t.eos }

// PadID returns the id used to fill the sequence after EOS.
func (t *Tokenizer) PadID() int { return t.pad }

// VocabSize returns one more than the largest id in the vocabulary: the number
// of rows the text encoder's embedding table must have. For CLIP's own
// vocabularies, whose ids are dense, it equals the number of entries.
func (t *Tokenizer) VocabSize() int { return t.vocabSize }
