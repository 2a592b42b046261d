// Package clip owns the CLIP byte-level BPE tokenizer that Stable Diffusion's text
// encoders expect (SD 1.x `tokenizer`, SDXL `tokenizer` and `tokenizer_2`).
//
// It reproduces Hugging Face's slow CLIPTokenizer as diffusers calls it
// (padding="max_length", max_length=77, truncation=True): the text is cleaned
// (whitespace runs collapsed, trimmed, lower-cased), split with CLIP's pattern,
// each piece is mapped byte by byte to printable runes and merged with the BPE
// ranks from merges.txt, and the result is framed by BOS/EOS and padded to
// [MaxLength] ids.
//
// Known, deliberate differences from the Python reference, all in rare inputs:
// no ftfy repairs, no HTML unescaping and no NFC normalisation are applied, and
// lower-casing is Go's per-rune [unicode.ToLower] (Python lower-cases a few
// characters, such as U+0130 and a word-final capital sigma, differently).
// Invalid UTF-8 is replaced with U+FFFD first, as encoding/json would do.
package clip
