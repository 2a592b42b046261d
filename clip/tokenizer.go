package clip

import (
	"errors"
	"fmt"
	"strings"
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
	symbols   map[int]string // id → vocabulary symbol
	ranks     map[pair]int
	special   map[string]int
	bos       int
	eos       int
	pad       int
	unk       int
	vocabSize int

	// added are matched in the raw prompt before clean-up (see AddedToken);
	// addedFirst marks the bytes one of them starts with, addedIDs maps their
	// contents to ids, and addedRules is set when any strips or is single-word.
	added      []AddedToken
	addedFirst [256]bool
	addedIDs   map[string]int
	addedRules bool

	cache wordCache
}

// Options are the optional parts of a tokenizer's configuration.
type Options struct {
	// PadToken names the padding symbol; "" means the end-of-text token.
	PadToken string
	// UnkToken names the symbol for pieces missing from the vocabulary; ""
	// means the end-of-text token.
	UnkToken string
	// AddedTokens are matched in the raw prompt before anything else, as
	// tokenizer_config.json's added_tokens_decoder declares them. The
	// start-of-text, end-of-text, pad and unknown tokens are always added
	// tokens, as transformers makes every special token one; an entry here
	// for one of them sets its id and flags.
	AddedTokens []AddedToken
}

// New builds a Tokenizer from a vocabulary (symbol → id, as in vocab.json) and
// merges in rank order (as in merges.txt, without the version line). padToken
// names the padding symbol; "" means the end-of-text token. The vocabulary must
// hold "<|startoftext|>", "<|endoftext|>" and padToken.
//
// The start-of-text, end-of-text and pad tokens are added tokens (see
// AddedToken): with padToken "!", every "!" of a prompt is the pad id.
func New(vocab map[string]int, merges [][2]string, padToken string) (*Tokenizer, error) {
	return NewWithOptions(vocab, merges, Options{PadToken: padToken})
}

// NewWithOptions is New with the unknown token and added tokens configurable,
// as Load reads them from a tokenizer folder.
func NewWithOptions(vocab map[string]int, merges [][2]string, opts Options) (*Tokenizer, error) {
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
	t.symbols = make(map[int]string, len(t.vocab))
	for s, id := range t.vocab {
		// Of two symbols with one id, the later in vocab.json would win in
		// transformers' decoder; a map cannot tell which is later, so the
		// smaller string wins, which at least is deterministic.
		if prev, dup := t.symbols[id]; !dup || s < prev {
			t.symbols[id] = s
		}
	}
	for i, m := range merges {
		if m[0] == "" || m[1] == "" {
			return nil, fmt.Errorf("clip: merge %d (%q %q) has an empty side", i, m[0], m[1])
		}
		// A repeated merge keeps its last rank, as a Python dict built from the
		// list would.
		t.ranks[pair{m[0], m[1]}] = i
	}
	padToken, unkToken := opts.PadToken, opts.UnkToken
	if padToken == "" {
		padToken = endOfText
	}
	if unkToken == "" {
		unkToken = endOfText
	}
	if err := t.addTokens(opts.AddedTokens, padToken, unkToken); err != nil {
		return nil, err
	}
	var err error
	if t.bos, err = t.addedOrVocabID("start-of-text token", startOfText); err != nil {
		return nil, err
	}
	if t.eos, err = t.addedOrVocabID("end-of-text token", endOfText); err != nil {
		return nil, err
	}
	if t.pad, err = t.addedOrVocabID("pad token", padToken); err != nil {
		return nil, err
	}
	if t.unk, err = t.addedOrVocabID("unknown token", unkToken); err != nil {
		return nil, err
	}
	t.special = map[string]int{startOfText: t.bos, endOfText: t.eos}
	return t, nil
}

// addTokens sets up the added tokens: those given, then the special tokens
// that are not among them, with ids from the vocabulary.
func (t *Tokenizer) addTokens(given []AddedToken, specials ...string) error {
	t.addedIDs = make(map[string]int)
	add := func(a AddedToken) error {
		if a.Content == "" {
			return errors.New("clip: added token with empty content")
		}
		if a.ID < 0 || a.ID >= t.vocabSize {
			// The text encoder's embedding table has VocabSize rows: an id past
			// it would fail there, so it fails here, at load.
			return fmt.Errorf("clip: added token %q has id %d, outside the vocabulary [0, %d)", a.Content, a.ID, t.vocabSize)
		}
		if _, dup := t.addedIDs[a.Content]; dup {
			return nil
		}
		t.addedIDs[a.Content] = a.ID
		t.added = append(t.added, a)
		t.addedFirst[a.Content[0]] = true
		t.addedRules = t.addedRules || a.LStrip || a.RStrip || a.SingleWord
		return nil
	}
	for _, a := range given {
		if err := add(a); err != nil {
			return err
		}
	}
	for i, s := range append([]string{startOfText, endOfText}, specials...) {
		if _, ok := t.addedIDs[s]; ok {
			continue
		}
		id, ok := t.vocab[s]
		if !ok {
			role := [...]string{"start-of-text token", "end-of-text token", "pad token", "unknown token"}[i]
			return fmt.Errorf("clip: %s %q is not in the vocabulary", role, s)
		}
		if err := add(AddedToken{Content: s, ID: id}); err != nil {
			return err
		}
	}
	return nil
}

// addedOrVocabID returns the id of symbol, an added token's id first.
func (t *Tokenizer) addedOrVocabID(role, symbol string) (int, error) {
	if id, ok := t.addedIDs[symbol]; ok {
		return id, nil
	}
	id, ok := t.vocab[symbol]
	if !ok {
		return 0, fmt.Errorf("clip: %s %q is not in the vocabulary", role, symbol)
	}
	return id, nil
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

// tokens feeds the ids of text to yield until yield returns false. It is
// transformers' CLIPTokenizer.tokenize followed by convert_tokens_to_ids:
// the added tokens are split out of the raw text first; every other piece is
// cleaned (see clean), cut with CLIP's pattern (see split) and BPE-encoded.
// Invalid UTF-8 is read as U+FFFD first, as encoding/json would decode it,
// and the clean-up then drops it, as it drops the unpaired surrogates a
// Python string can hold.
func (t *Tokenizer) tokens(text string, yield func(id int) bool) {
	text = strings.ToValidUTF8(text, "\uFFFD")
	for _, c := range t.splitAdded(text) {
		if c.added >= 0 {
			if !yield(t.added[c.added].ID) {
				return
			}
			continue
		}
		if c.text == "" {
			continue
		}
		stopped := false
		split(clean(c.text), func(piece string) bool {
			for _, id := range t.pieceIDs(piece) {
				if !yield(id) {
					stopped = true
					return false
				}
			}
			return true
		})
		if stopped {
			return
		}
	}
}

// Symbol returns the vocabulary symbol of id, as transformers'
// convert_ids_to_tokens shows it: bytes stand for printable runes (a space is
// "Ġ"), and a word's last symbol ends in "</w>". ok is false for an id that
// has no symbol.
func (t *Tokenizer) Symbol(id int) (symbol string, ok bool) {
	for _, a := range t.added {
		if a.ID == id {
			return a.Content, true
		}
	}
	symbol, ok = t.symbols[id]
	return symbol, ok
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
