// Package clip owns the CLIP byte-level BPE tokenizer that Stable Diffusion's text
// encoders expect (SD 1.x `tokenizer`, SDXL `tokenizer` and `tokenizer_2`).
//
// It reproduces transformers' slow CLIPTokenizer as diffusers calls it
// (padding="max_length", max_length=77, truncation=True) when ftfy is not
// installed, id for id:
//
//  1. added tokens (the special tokens bos, eos, unk and pad, and the
//     entries of added_tokens_decoder) are split out of the raw prompt first;
//     with SDXL's tokenizer_2, whose pad token is "!", every "!" is id 0;
//  2. each piece between them is cleaned as transformers' BasicTokenizer does:
//     control, format, private-use and unassigned characters, NUL and U+FFFD
//     are dropped, other whitespace becomes spaces, CJK ideographs become
//     words of their own, the text is normalised to NFC and each word is
//     lower-cased with Python's rules (see clean);
//  3. the cleaned text is split with CLIP's pattern, each piece mapped byte by
//     byte to printable runes and merged with the BPE ranks from merges.txt;
//  4. the result is framed by BOS/EOS, truncated to [MaxLength] keeping EOS,
//     and padded with the pad id.
//
// What Unicode calls unassigned follows CPython 3.11 (Unicode 14, see
// gen_unicode14.py). Invalid UTF-8 is read as U+FFFD, as encoding/json would
// decode it, and so dropped, like the unpaired surrogates a Python string can
// hold. No ftfy repairs and no HTML unescaping are applied: diffusers
// without ftfy applies none either.
package clip
