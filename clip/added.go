package clip

import (
	"strings"
)

// AddedToken is a token that transformers matches in the raw prompt before any
// clean-up, splitting the prompt around it (the added-token trie of
// PreTrainedTokenizer.tokenize): the special tokens (bos, eos, unk, pad and any
// additional special tokens) and the entries of tokenizer_config.json's
// added_tokens_decoder. Each match becomes ID as a whole; the text between
// matches is cleaned and BPE-encoded on its own.
//
// SDXL's tokenizer_2 (and SD 2.x's tokenizer) has pad token "!", so there
// every "!" of a prompt is id 0, where CLIP's own tokenizer would merge "!!!"
// into one BPE token.
type AddedToken struct {
	Content string
	ID      int
	// LStrip and RStrip remove the whitespace left and right of a match;
	// SingleWord keeps a match that touches a neighbour without a space in
	// between inside that neighbour (not split out), as transformers does.
	LStrip, RStrip, SingleWord bool
}

// chunk is a piece of a prompt after the added-token split: either an added
// token (added >= 0, its index in Tokenizer.added) or text to clean and encode.
type chunk struct {
	text  string
	added int
}

// splitAdded cuts text at the added tokens, leftmost match first and, among
// matches that start at the same place, the longest, then applies the
// tokens' strip and single-word rules the way transformers' tokenize does.
// For token sets where no token overlaps another (CLIP's), this is what the
// transformers trie finds.
func (t *Tokenizer) splitAdded(text string) []chunk {
	if len(t.added) == 0 {
		return []chunk{{text: text, added: -1}}
	}
	var chunks []chunk
	start := 0
	for i := 0; i < len(text); {
		best := -1
		if t.addedFirst[text[i]] {
			for k, a := range t.added {
				if strings.HasPrefix(text[i:], a.Content) && (best < 0 || len(a.Content) > len(t.added[best].Content)) {
					best = k
				}
			}
		}
		if best < 0 {
			i++
			continue
		}
		if start < i {
			chunks = append(chunks, chunk{text: text[start:i], added: -1})
		}
		chunks = append(chunks, chunk{text: t.added[best].Content, added: best})
		i += len(t.added[best].Content)
		start = i
	}
	if start < len(text) {
		chunks = append(chunks, chunk{text: text[start:], added: -1})
	}
	if !t.addedRules {
		return chunks
	}
	// The rules of PreTrainedTokenizer.tokenize, applied in one left-to-right
	// pass over the pieces, each rule seeing its neighbours as earlier rules
	// left them.
	for i, c := range chunks {
		if c.added < 0 {
			continue
		}
		a := t.added[c.added]
		var left, right *chunk
		if i > 0 {
			left = &chunks[i-1]
		}
		if i+1 < len(chunks) {
			right = &chunks[i+1]
		}
		if a.RStrip && right != nil && right.text != "" {
			right.text = strings.TrimLeftFunc(right.text, isPythonSpace)
		}
		if a.LStrip && left != nil && left.text != "" {
			left.text = strings.TrimRightFunc(left.text, isPythonSpace)
		}
		switch {
		case a.SingleWord && left != nil && left.text != "" && !strings.HasSuffix(left.text, " "):
			left.text += c.text
			left.added = -1
			chunks[i] = chunk{added: -1}
		case a.SingleWord && right != nil && right.text != "" && !strings.HasPrefix(right.text, " "):
			chunks[i] = chunk{text: c.text + right.text, added: -1}
			*right = chunk{added: -1}
		}
	}
	return chunks
}
