package tinymodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// Special tokens, as CLIP names them; they take the last two ids.
const (
	startOfText = "<|startoftext|>"
	endOfText   = "<|endoftext|>"
	endOfWord   = "</w>"
	maxMerges   = 400
)

// corpus is the text the merges are learned from: prompt-like English, so that
// common prompt words become single tokens as they do with the real vocabulary.
const corpus = `
a photo of a cat sitting on a red chair in the sun, highly detailed, sharp focus.
a painting of a dog running on the beach at sunset, oil on canvas, warm light.
an astronaut riding a horse on the moon, digital art, trending on artstation.
a portrait of an old man with a white beard, studio lighting, photorealistic.
a castle on a hill above a quiet village, fantasy landscape, mountains and a river.
a bowl of fruit on a wooden table, still life, soft shadows, high resolution.
a city street at night in the rain, neon lights, reflections, cinematic photo.
a small house in the forest with snow on the trees, winter morning, cozy.
a red sports car on a mountain road, motion blur, golden hour, professional photo.
a cute robot reading a book in a library, concept art, vibrant colors.
the sea and the sky and the light of the setting sun over the water.
a beautiful woman in a blue dress standing in a field of flowers, spring.
a dragon flying over the clouds, epic fantasy painting, dramatic lighting.
a cup of coffee on a table next to a window, morning light, shallow depth of field.
an illustration of a fox in the woods, watercolor, children book style.
a futuristic city with flying cars and tall towers, science fiction, wide angle.
a bird sitting on a branch, macro photo, bokeh background, detailed feathers.
a ship on the ocean in a storm, dark clouds, waves, painting in the style of turner.
the best quality, masterpiece, ultra detailed, intricate, elegant, smooth, sharp.
a garden with roses and a stone path, summer afternoon, light and shadow.
a man walking a dog in the park, autumn leaves, film photo, natural colors.
a mountain lake with a reflection of the mountains in the water, clear blue sky.
a bright kitchen with plants and white walls, interior design, architecture photo.
a black and white photo of a train station with people waiting for the train.
`

// bytesToUnicode returns CLIP's byte-level alphabet in CLIP's order: the
// printable bytes "!".."~", "¡".."¬", "®".."ÿ" map to themselves, then the other
// bytes in ascending order map to U+0100 onwards. Position in the returned slice
// is the token id, so "!" is id 0; byteRune maps a byte to its rune.
func bytesToUnicode() (order []rune, byteRune [256]rune) {
	var printable [256]bool
	for _, r := range [][2]int{{'!', '~'}, {0xA1, 0xAC}, {0xAE, 0xFF}} {
		for b := r[0]; b <= r[1]; b++ {
			printable[b] = true
			order = append(order, rune(b))
			byteRune[b] = rune(b)
		}
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !printable[b] {
			byteRune[b] = rune(256 + n)
			order = append(order, rune(256+n))
			n++
		}
	}
	return order, byteRune
}

// vocabulary is a tiny byte-level BPE tokenizer: its ids and merges.
type vocabulary struct {
	tokens []string // by id
	merges [][2]string
}

// buildVocabulary lays out the vocabulary as CLIP does: the 256 byte symbols,
// the same with "</w>", the merged symbols in merge order, then the two special
// tokens.
func buildVocabulary() vocabulary {
	order, byteRune := bytesToUnicode()
	var v vocabulary
	for _, r := range order {
		v.tokens = append(v.tokens, string(r))
	}
	for _, r := range order {
		v.tokens = append(v.tokens, string(r)+endOfWord)
	}
	v.merges = learnMerges(corpus, byteRune, maxMerges)
	for _, m := range v.merges {
		v.tokens = append(v.tokens, m[0]+m[1])
	}
	v.tokens = append(v.tokens, startOfText, endOfText)
	return v
}

// learnMerges learns up to limit BPE merges from text, pre-tokenized roughly as
// CLIP does (lower case, letter runs, digits and punctuation one by one), each
// word's last symbol carrying "</w>". Ties go to the pair that sorts first, so
// the result is the same on every run. It stops early when no pair occurs twice.
func learnMerges(text string, byteRune [256]rune, limit int) [][2]string {
	counts := map[string]int{}
	for _, w := range preTokenize(text) {
		counts[w]++
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Strings(words)
	type word struct {
		syms  []string
		count int
	}
	ws := make([]word, len(words))
	for i, w := range words {
		var syms []string
		for _, b := range []byte(w) {
			syms = append(syms, string(byteRune[b]))
		}
		syms[len(syms)-1] += endOfWord
		ws[i] = word{syms: syms, count: counts[w]}
	}

	var merges [][2]string
	for len(merges) < limit {
		pairs := map[[2]string]int{}
		for _, w := range ws {
			for j := 0; j+1 < len(w.syms); j++ {
				pairs[[2]string{w.syms[j], w.syms[j+1]}] += w.count
			}
		}
		var best [2]string
		bestN := 0
		for p, n := range pairs {
			if n > bestN || (n == bestN && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestN = p, n
			}
		}
		if bestN < 2 {
			break
		}
		merges = append(merges, best)
		joined := best[0] + best[1]
		for i := range ws {
			syms := ws[i].syms
			out := syms[:0]
			for j := 0; j < len(syms); j++ {
				if j+1 < len(syms) && syms[j] == best[0] && syms[j+1] == best[1] {
					out = append(out, joined)
					j++
					continue
				}
				out = append(out, syms[j])
			}
			ws[i].syms = out
		}
	}
	return merges
}

// preTokenize splits lower-cased text into letter runs and single other
// non-space characters.
func preTokenize(text string) []string {
	var words []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			words = append(words, cur.String())
			cur.Reset()
		}
	}
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r):
			cur.WriteRune(r)
		case unicode.IsSpace(r):
			flush()
		default:
			flush()
			words = append(words, string(r))
		}
	}
	flush()
	return words
}

// tokenizerFiles returns the files of a diffusers CLIPTokenizer folder. pad is
// the padding token: "<|endoftext|>" for SD's tokenizer, "!" for SDXL's second.
func (v vocabulary) tokenizerFiles(pad string) (map[string][]byte, error) {
	ids := make(map[string]int, len(v.tokens))
	for i, t := range v.tokens {
		ids[t] = i
	}
	if len(ids) != len(v.tokens) {
		return nil, fmt.Errorf("tinymodel: vocabulary has duplicate tokens")
	}
	vocab, err := jsonCompact(ids)
	if err != nil {
		return nil, err
	}
	var merges bytes.Buffer
	merges.WriteString("#version: 0.2\n")
	for _, m := range v.merges {
		merges.WriteString(m[0] + " " + m[1] + "\n")
	}
	added := func(s string) map[string]any {
		return map[string]any{"__type": "AddedToken", "content": s, "lstrip": false, "normalized": true, "rstrip": false, "single_word": false}
	}
	config, err := jsonFile(map[string]any{
		"add_prefix_space":             false,
		"bos_token":                    added(startOfText),
		"clean_up_tokenization_spaces": true,
		"do_lower_case":                true,
		"eos_token":                    added(endOfText),
		"errors":                       "replace",
		"model_max_length":             maxLength,
		"pad_token":                    pad,
		"tokenizer_class":              "CLIPTokenizer",
		"unk_token":                    added(endOfText),
	})
	if err != nil {
		return nil, err
	}
	special := func(s string) map[string]any {
		return map[string]any{"content": s, "lstrip": false, "normalized": true, "rstrip": false, "single_word": false}
	}
	specialMap, err := jsonFile(map[string]any{
		"bos_token": special(startOfText),
		"eos_token": special(endOfText),
		"pad_token": pad,
		"unk_token": special(endOfText),
	})
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		"vocab.json":              vocab,
		"merges.txt":              merges.Bytes(),
		"tokenizer_config.json":   config,
		"special_tokens_map.json": specialMap,
	}, nil
}

// jsonFile renders v as indented JSON with a final newline; map keys come out
// sorted, so the bytes are stable.
// Like Python's json, it leaves "<" and ">" unescaped.
func jsonFile(v any) ([]byte, error) { return encodeJSON(v, "  ") }

// jsonCompact renders v on one line, as vocab.json is written.
func jsonCompact(v any) ([]byte, error) { return encodeJSON(v, "") }

func encodeJSON(v any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("tinymodel: %w", err)
	}
	return buf.Bytes(), nil
}
