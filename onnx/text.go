package onnx

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/diffute/diffute/clip"
	ort "github.com/yalue/onnxruntime_go"
)

// textOutputs says which outputs of a text encoder the pipeline uses.
type textOutputs int

const (
	lastHidden           textOutputs = iota // SD 1.x: last_hidden_state
	penultimate                             // SDXL text_encoder: hidden_states.{L-1}
	penultimateAndPooled                    // SDXL text_encoder_2: hidden_states.{L-1}, text_embeds
)

// textEncoder is a CLIP text encoder session.
type textEncoder struct {
	rel       string
	sess      *ort.DynamicAdvancedSession
	idsType   ort.TensorElementDataType
	hidden    ort.InputOutputInfo  // [B,77,D]
	pooled    *ort.InputOutputInfo // [B,P], SDXL text_encoder_2 only
	hiddenDim int                  // D, 0 when symbolic in the model
	pooledDim int
}

func (t *textEncoder) session() *ort.DynamicAdvancedSession {
	if t == nil {
		return nil
	}
	return t.sess
}

// penultimateHidden picks the second-to-last hidden_states.N output: diffusers'
// SDXL uses hidden_states[-2] of each encoder (hidden_states.11 of 0..12 for
// text_encoder, hidden_states.31 of 0..32 for text_encoder_2).
func penultimateHidden(m *modelInfo) (string, error) {
	var idx []int
	for _, out := range m.outputs {
		if n, ok := strings.CutPrefix(out.Name, "hidden_states."); ok {
			if i, err := strconv.Atoi(n); err == nil {
				idx = append(idx, i)
			}
		}
	}
	if len(idx) < 2 {
		return "", fmt.Errorf("onnx: %s has no hidden_states.N outputs (SDXL needs the penultimate hidden state; re-export with output_hidden_states)", m.rel)
	}
	sort.Ints(idx)
	return "hidden_states." + strconv.Itoa(idx[len(idx)-2]), nil
}

func openTextEncoder(src componentSource, component string, sc sessionConfig, want textOutputs) (*textEncoder, error) {
	m, err := src.info(component)
	if err != nil {
		return nil, err
	}
	if err := m.checkOnlyInputs("input_ids"); err != nil {
		return nil, err
	}
	ids, err := m.requireInput("input_ids")
	if err != nil {
		return nil, err
	}
	if ids.DataType != ort.TensorElementDataTypeInt32 && ids.DataType != ort.TensorElementDataTypeInt64 {
		return nil, fmt.Errorf("onnx: %s input_ids has element type %v, want int32 or int64", m.rel, ids.DataType)
	}
	if len(ids.Dimensions) != 2 {
		return nil, fmt.Errorf("onnx: %s input_ids has rank %d, want 2", m.rel, len(ids.Dimensions))
	}
	if n := dim(ids.Dimensions, 1); n != 0 && n != clip.MaxLength {
		return nil, fmt.Errorf("onnx: %s input_ids takes %d tokens, want %d", m.rel, n, clip.MaxLength)
	}
	hiddenName := "last_hidden_state"
	if want != lastHidden {
		if hiddenName, err = penultimateHidden(m); err != nil {
			return nil, err
		}
	}
	t := &textEncoder{rel: m.rel, idsType: ids.DataType}
	if t.hidden, err = m.requireOutput(hiddenName); err != nil {
		return nil, err
	}
	if len(t.hidden.Dimensions) != 3 {
		return nil, fmt.Errorf("onnx: %s output %q has rank %d, want 3", m.rel, hiddenName, len(t.hidden.Dimensions))
	}
	t.hiddenDim = dim(t.hidden.Dimensions, 2)
	outs := []string{hiddenName}
	if want == penultimateAndPooled {
		pooled, err := m.requireOutput("text_embeds")
		if err != nil {
			return nil, err
		}
		if len(pooled.Dimensions) != 2 {
			return nil, fmt.Errorf("onnx: %s output text_embeds has rank %d, want 2", m.rel, len(pooled.Dimensions))
		}
		t.pooled = &pooled
		t.pooledDim = dim(pooled.Dimensions, 1)
		outs = append(outs, "text_embeds")
	}
	if t.sess, err = m.newSession([]string{"input_ids"}, outs, sc); err != nil {
		return nil, err
	}
	return t, nil
}

// encoded is a text encoder's result for rows prompts.
type encoded struct {
	hidden    []float32 // [rows,77,D]
	hiddenDim int
	pooled    []float32 // [rows,P], nil without a pooled output
	pooledDim int
}

// encode runs the encoder on rows×77 token ids.
func (t *textEncoder) encode(ids []int64, rows int) (encoded, error) {
	var res encoded
	in, err := newIDsTensor(t.idsType, rows, ids)
	if err != nil {
		return res, fmt.Errorf("onnx: %s: %w", t.rel, err)
	}
	defer in.Destroy()
	infos := []ort.InputOutputInfo{t.hidden}
	if t.pooled != nil {
		infos = append(infos, *t.pooled)
	}
	outs := make([]ort.Value, len(infos))
	defer func() {
		for _, v := range outs {
			if v != nil {
				_ = v.Destroy()
			}
		}
	}()
	pre := make([]*floatTensor, len(infos))
	for i, info := range infos {
		want := ort.NewShape(int64(rows), clip.MaxLength, -1)
		if len(info.Dimensions) == 2 {
			want = ort.NewShape(int64(rows), -1)
		}
		shape, err := resolveShape(info.Dimensions, want)
		if err != nil {
			if info.DataType == ort.TensorElementDataTypeFloat {
				continue // ORT allocates fp32 outputs of any shape itself
			}
			return res, fmt.Errorf("onnx: %s output %q: %w", t.rel, info.Name, err)
		}
		if pre[i], err = newFloatTensor(info.DataType, shape); err != nil {
			return res, err
		}
		outs[i] = pre[i].value
	}
	if err := t.sess.Run([]ort.Value{in}, outs); err != nil {
		return res, fmt.Errorf("onnx: run %s: %w", t.rel, err)
	}
	read := func(i int) ([]float32, int, error) {
		if pre[i] != nil {
			data := make([]float32, pre[i].len())
			pre[i].load(0, data)
			s := pre[i].shape
			return data, int(s[len(s)-1]), nil
		}
		tensor, ok := outs[i].(*ort.Tensor[float32])
		if !ok {
			return nil, 0, fmt.Errorf("onnx: %s output %q: unexpected value type %T", t.rel, infos[i].Name, outs[i])
		}
		s := tensor.GetShape()
		if len(s) != len(infos[i].Dimensions) || s[0] != int64(rows) {
			return nil, 0, fmt.Errorf("onnx: %s output %q has shape %v for %d prompts", t.rel, infos[i].Name, s, rows)
		}
		return append([]float32(nil), tensor.GetData()...), int(s[len(s)-1]), nil
	}
	if res.hidden, res.hiddenDim, err = read(0); err != nil {
		return res, err
	}
	if len(res.hidden) != rows*clip.MaxLength*res.hiddenDim {
		return res, fmt.Errorf("onnx: %s output %q: %d values, want %d×%d×%d", t.rel, infos[0].Name, len(res.hidden), rows, clip.MaxLength, res.hiddenDim)
	}
	if t.pooled != nil {
		if res.pooled, res.pooledDim, err = read(1); err != nil {
			return res, err
		}
	}
	return res, nil
}

// promptEmbeds are the text conditioning of one prompt: cond, and uncond when
// classifier-free guidance is on.
type promptEmbeds struct {
	cond, uncond             []float32 // [77,D] each
	dim                      int
	pooledCond, pooledUncond []float32 // [P] each, SDXL only
	pooledDim                int
	warnings                 []string
}

// encodePrompts encodes the prompt and, when guided, the negative prompt, in one
// text encoder call per encoder. As in diffusers, a negative prompt that was not
// given (nil) is encoded as "" — except on SDXL with
// force_zeros_for_empty_prompt, which conditions on zeros instead; a negative
// prompt given as "" is always encoded.
func (p *Pipeline) encodePrompts(prompt string, negative *string, guided bool) (promptEmbeds, error) {
	var pe promptEmbeds
	zeroUncond := guided && p.family == SDXL && p.forceZeros && negative == nil
	texts := []string{prompt}
	if guided && !zeroUncond {
		neg := ""
		if negative != nil {
			neg = *negative
		}
		texts = []string{neg, prompt}
	}
	tokenize := func(tok *clip.Tokenizer, name string) []int64 {
		ids := make([]int64, 0, len(texts)*clip.MaxLength)
		for i, text := range texts {
			row, truncated := tok.Encode(text)
			if truncated {
				which := "prompt"
				if len(texts) == 2 && i == 0 {
					which = "negative prompt"
				}
				pe.warnings = append(pe.warnings, fmt.Sprintf("%s is longer than %d tokens for %s; the rest was ignored", which, clip.MaxLength, name))
			}
			ids = append(ids, row...)
		}
		return ids
	}
	rows := len(texts)
	e1, err := p.te1.encode(tokenize(p.tok1, "tokenizer"), rows)
	if err != nil {
		return pe, err
	}
	hidden, d := e1.hidden, e1.hiddenDim
	var pooled []float32
	if p.family == SDXL {
		e2, err := p.te2.encode(tokenize(p.tok2, "tokenizer_2"), rows)
		if err != nil {
			return pe, err
		}
		if e2.pooled == nil {
			return pe, fmt.Errorf("onnx: %s gave no text_embeds", p.te2.rel)
		}
		// Concatenate per token: [rows,77,D1] ++ [rows,77,D2] → [rows,77,D1+D2].
		d = e1.hiddenDim + e2.hiddenDim
		hidden = make([]float32, rows*clip.MaxLength*d)
		for tkn := 0; tkn < rows*clip.MaxLength; tkn++ {
			copy(hidden[tkn*d:], e1.hidden[tkn*e1.hiddenDim:(tkn+1)*e1.hiddenDim])
			copy(hidden[tkn*d+e1.hiddenDim:], e2.hidden[tkn*e2.hiddenDim:(tkn+1)*e2.hiddenDim])
		}
		pooled, pe.pooledDim = e2.pooled, e2.pooledDim
	}
	row := clip.MaxLength * d
	pe.dim = d
	pe.cond = hidden[(rows-1)*row:]
	if pooled != nil {
		pe.pooledCond = pooled[(rows-1)*pe.pooledDim:]
	}
	switch {
	case !guided:
	case zeroUncond:
		pe.uncond = make([]float32, row)
		if pooled != nil {
			pe.pooledUncond = make([]float32, pe.pooledDim)
		}
	default:
		pe.uncond = hidden[:row]
		if pooled != nil {
			pe.pooledUncond = pooled[:pe.pooledDim]
		}
	}
	if p.unet.hiddenDim > 0 && d != p.unet.hiddenDim {
		return pe, fmt.Errorf("onnx: text encoders give %d features per token, the UNet wants %d", d, p.unet.hiddenDim)
	}
	return pe, nil
}
