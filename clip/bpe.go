package clip

import (
	"strings"
	"sync"
)

// endOfWord marks the last symbol of a word in CLIP's vocabulary ("cat</w>").
const endOfWord = "</w>"

// byteRunes maps each byte to the printable rune that stands for it in the
// vocabulary (the reference's bytes_to_unicode). Printable Latin-1 bytes stand
// for themselves; the rest (controls, space, a few Latin-1 gaps) are moved to
// U+0100 and up, in byte order, so no vocabulary entry holds whitespace.
var byteRunes = func() [256]rune {
	var table [256]rune
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	next := rune(256)
	for b := 0; b < 256; b++ {
		if printable(b) {
			table[b] = rune(b)
		} else {
			table[b] = next
			next++
		}
	}
	return table
}()

// pair is two adjacent symbols that a merge may join.
type pair struct{ left, right string }

// maxCachedWords bounds the per-word cache. Prompts reuse a small vocabulary of
// words, so the cache pays off quickly; the bound keeps a stream of unique words
// (random strings, an attack) from growing memory without limit.
const maxCachedWords = 1 << 16

// wordCache remembers the ids of words already merged. When it is full it is
// emptied and refilled, which is cheaper to reason about than an LRU and good
// enough for a cache whose hit rate comes from a few common words.
type wordCache struct {
	mu    sync.RWMutex
	words map[string][]int
}

func (c *wordCache) get(word string) ([]int, bool) {
	c.mu.RLock()
	ids, ok := c.words[word]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(word string, ids []int) {
	c.mu.Lock()
	if c.words == nil || len(c.words) >= maxCachedWords {
		c.words = make(map[string][]int, 256)
	}
	c.words[word] = ids
	c.mu.Unlock()
}

// encodeBytes maps the bytes of piece to their vocabulary runes.
func encodeBytes(piece string) []string {
	symbols := make([]string, len(piece))
	for i := 0; i < len(piece); i++ {
		symbols[i] = string(byteRunes[piece[i]])
	}
	return symbols
}

// bpe merges the byte symbols of one piece, lowest merge rank first, and returns
// the final symbols. The last symbol carries the end-of-word marker, exactly as
// the reference builds word = tuple(token[:-1]) + (token[-1] + "</w>",).
func (t *Tokenizer) bpe(piece string) []string {
	word := encodeBytes(piece)
	word[len(word)-1] += endOfWord
	for len(word) > 1 {
		best, bestRank := -1, 0
		for i := 0; i+1 < len(word); i++ {
			if rank, ok := t.ranks[pair{word[i], word[i+1]}]; ok && (best < 0 || rank < bestRank) {
				best, bestRank = i, rank
			}
		}
		if best < 0 {
			break
		}
		// Join every non-overlapping occurrence of the chosen pair, scanning left
		// to right, as the reference does in one pass.
		left, right := word[best], word[best+1]
		merged := word[:0:0]
		for i := 0; i < len(word); {
			if i+1 < len(word) && word[i] == left && word[i+1] == right {
				merged = append(merged, left+right)
				i += 2
				continue
			}
			merged = append(merged, word[i])
			i++
		}
		word = merged
	}
	return word
}

// pieceIDs returns the vocabulary ids of one split piece, using and filling the
// cache. Symbols missing from the vocabulary map to the unknown token.
func (t *Tokenizer) pieceIDs(piece string) []int {
	if id, ok := t.special[piece]; ok {
		return []int{id}
	}
	if ids, ok := t.cache.get(piece); ok {
		return ids
	}
	symbols := t.bpe(piece)
	ids := make([]int, len(symbols))
	for i, s := range symbols {
		// convert_tokens_to_ids looks a symbol up among the added tokens first.
		id, ok := t.addedIDs[s]
		if !ok {
			id, ok = t.vocab[s]
		}
		if !ok {
			id = t.unk
		}
		ids[i] = id
	}
	// The key is cloned so that the cache does not pin the caller's prompt.
	t.cache.put(strings.Clone(piece), ids)
	return ids
}
