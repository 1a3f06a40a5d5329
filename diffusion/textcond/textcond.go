// Package textcond turns prompts into the conditioning a UNet attends to, the way
// each Stable Diffusion family's diffusers pipeline builds it:
//
//   - SD 1.x and 2.x: the text encoder's last hidden state (after its final layer
//     norm); with clip_skip k, the hidden state k layers before the last, then
//     the final layer norm.
//   - SDXL: the penultimate hidden states of both encoders (no final norm),
//     concatenated along the features; with clip_skip k, k layers further back.
//     The second encoder's projected pooled output is the pooled embedding.
//
// clip_skip has diffusers' meaning: 1 uses the penultimate layer. AUTOMATIC1111's
// "Clip skip 2" is diffusers' clip_skip 1 (A1111 counts the last layer as 1).
//
// By default prompts are weighted and chunked as AUTOMATIC1111 and
// stable-diffusion.cpp do (see package prompt for the syntax): the prompt's tokens
// are cut into chunks of 75, each framed as bos, tokens, eos and padding to 77,
// encoded, and concatenated along the sequence; BREAK starts a new chunk; a
// token's weight multiplies its hidden state, and each chunk is then rescaled so
// that its mean is what it was unweighted. A prompt without weighting syntax that
// fits one chunk gives exactly diffusers' embeddings. Options.Plain gives
// diffusers' behaviour for every prompt: the literal text, truncated to 77 tokens.
// A1111's comma back-tracking at chunk boundaries is not done.
package textcond

import (
	"errors"
	"fmt"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/prompt"
	"github.com/sdgo/sdgo/diffusion/tokenizer"
	"github.com/sdgo/sdgo/tensor"
)

// Family selects how the hidden states become the conditioning.
type Family int

// The families.
const (
	SD1  Family = iota + 1 // one CLIP-L encoder, last hidden state
	SD2                    // one OpenCLIP-H encoder, last hidden state
	SDXL                   // CLIP-L and OpenCLIP-bigG, penultimate states, pooled projection
)

// chunkTokens is the number of prompt tokens in one 77-token chunk.
const chunkTokens = 75

// Encoder holds a family's tokenizers and text models (one each for SD 1.x and
// 2.x, two for SDXL, in the pipeline's order).
type Encoder struct {
	family     Family
	tokenizers []*tokenizer.Tokenizer
	models     []*clip.TextModel
}

// New makes an Encoder. The tokenizers and models stay owned by the caller.
func New(f Family, toks []*tokenizer.Tokenizer, models []*clip.TextModel) (*Encoder, error) {
	want := 1
	if f == SDXL {
		want = 2
	}
	if f < SD1 || f > SDXL {
		return nil, fmt.Errorf("textcond: unknown family %d", f)
	}
	if len(toks) != want || len(models) != want {
		return nil, fmt.Errorf("textcond: %d tokenizers and %d text models for a family that has %d", len(toks), len(models), want)
	}
	if cfg := models[1:]; f == SDXL && !withProjection(cfg[0]) {
		return nil, errors.New("textcond: SDXL's second text encoder must be a CLIPTextModelWithProjection")
	}
	return &Encoder{family: f, tokenizers: toks, models: models}, nil
}

// Options tune the encoding.
type Options struct {
	// ClipSkip skips that many final layers (diffusers' meaning; 0 = none).
	ClipSkip int
	// Plain encodes the literal text truncated to 77 tokens, as diffusers does,
	// with no weighting syntax and no chunking.
	Plain bool
}

// Result is one prompt's conditioning.
type Result struct {
	Context *tensor.Tensor // [1, 77·Chunks, D]
	Pooled  *tensor.Tensor // [1, P], SDXL only
	Chunks  int
	// Truncated reports that Plain mode dropped tokens beyond the 77th.
	Truncated bool
}

// Release releases the tensors.
func (r *Result) Release() {
	if r != nil {
		r.Context.Release()
		r.Pooled.Release()
	}
}

// chunk is one 77-token sequence with a weight per position.
type chunk struct {
	ids     []int
	weights []float32
}

// chunks cuts a prompt into framed chunks for one tokenizer; with minChunks it
// appends empty chunks up to that count.
func chunks(tok *tokenizer.Tokenizer, text string, o Options, minChunks int) (cs []chunk, truncated bool) {
	frame := func(ids []int, w []float32) chunk {
		framed := tok.Frame(ids, chunkTokens+2)
		weights := make([]float32, len(framed))
		for i := range weights {
			weights[i] = 1
			if i >= 1 && i-1 < len(w) {
				weights[i] = w[i-1]
			}
		}
		return chunk{framed, weights}
	}
	if o.Plain {
		ids := tok.Encode(text)
		cs = append(cs, frame(ids, nil))
		truncated = len(ids) > chunkTokens
	} else {
		var ids []int
		var w []float32
		flush := func() {
			cs = append(cs, frame(ids, w))
			ids, w = nil, nil
		}
		for _, f := range prompt.Parse(text) {
			if f.Break {
				flush()
				continue
			}
			for _, id := range tok.Encode(f.Text) {
				if len(ids) == chunkTokens {
					flush()
				}
				ids = append(ids, id)
				w = append(w, float32(f.Weight))
			}
		}
		if len(ids) > 0 || len(cs) == 0 {
			flush()
		}
	}
	for len(cs) < minChunks {
		cs = append(cs, frame(nil, nil))
	}
	return cs, truncated
}

// Texts is a prompt for each text encoder of the family (SDXL's prompt and
// prompt_2); a single text is given to every encoder.
type Texts []string

func (t Texts) at(i int) string {
	if i < len(t) {
		return t[i]
	}
	return t[len(t)-1]
}

// Encode conditions on one prompt, given to every text encoder.
func (e *Encoder) Encode(text string, o Options) (*Result, error) {
	return e.EncodeTexts(Texts{text}, o)
}

// EncodeTexts conditions on a prompt per text encoder.
func (e *Encoder) EncodeTexts(texts Texts, o Options) (*Result, error) {
	if len(texts) == 0 {
		return nil, errors.New("textcond: no prompt")
	}
	return e.encode(texts, o, e.chunkCount(o, texts))
}

// EncodePair conditions on a prompt and its negative, padding the shorter with
// empty chunks so that both have as many chunks (classifier-free guidance
// batches them together). Options.ClipSkip applies to the prompt only, as in
// diffusers' pipelines.
func (e *Encoder) EncodePair(positive, negative Texts, o Options) (pos, neg *Result, err error) {
	if len(positive) == 0 || len(negative) == 0 {
		return nil, nil, errors.New("textcond: no prompt")
	}
	n := e.chunkCount(o, positive, negative)
	if pos, err = e.encode(positive, o, n); err != nil {
		return nil, nil, err
	}
	// diffusers applies clip_skip to the prompt only: the negative prompt is
	// always encoded from the final layer (SDXL: the penultimate one).
	negOpts := o
	negOpts.ClipSkip = 0
	if neg, err = e.encode(negative, negOpts, n); err != nil {
		pos.Release()
		return nil, nil, err
	}
	return pos, neg, nil
}

// chunkCount returns how many chunks the longest of the texts needs with any
// of the tokenizers, so that every encoder's context has the same length.
func (e *Encoder) chunkCount(o Options, texts ...Texts) int {
	n := 1
	if o.Plain {
		return n
	}
	for _, ts := range texts {
		for i, tok := range e.tokenizers {
			cs, _ := chunks(tok, ts.at(i), o, 0)
			n = max(n, len(cs))
		}
	}
	return n
}

func (e *Encoder) encode(texts Texts, o Options, minChunks int) (*Result, error) {
	if o.ClipSkip < 0 {
		return nil, fmt.Errorf("textcond: clip_skip %d is negative", o.ClipSkip)
	}
	res := &Result{}
	var contexts []*tensor.Tensor
	defer func() {
		for _, c := range contexts {
			c.Release()
		}
	}()
	for i, tok := range e.tokenizers {
		cs, truncated := chunks(tok, texts.at(i), o, minChunks)
		if i > 0 && len(cs) != res.Chunks {
			return nil, fmt.Errorf("textcond: text encoder %d cuts the prompt into %d chunks, encoder 0 into %d", i+1, len(cs), res.Chunks)
		}
		res.Chunks, res.Truncated = len(cs), res.Truncated || truncated
		ctx, pooled, err := e.encodeChunks(i, cs, o.ClipSkip)
		if err != nil {
			res.Release()
			return nil, err
		}
		contexts = append(contexts, ctx)
		if pooled != nil {
			res.Pooled.Release()
			res.Pooled = pooled
		}
	}
	var err error
	if len(contexts) == 1 {
		res.Context, contexts = contexts[0], nil
	} else {
		res.Context, err = tensor.Concat(2, contexts...)
	}
	if err != nil {
		res.Release()
		return nil, err
	}
	return res, nil
}

// encodeChunks runs text model i on the chunks as one batch and returns the
// context [1, 77·len(cs), D] and, for a model with a projection used for pooling
// (SDXL's second), the first chunk's pooled embedding [1, P].
func (e *Encoder) encodeChunks(i int, cs []chunk, clipSkip int) (ctx, pooled *tensor.Tensor, err error) {
	m := e.models[i]
	batch := make([][]int, len(cs))
	for k, c := range cs {
		batch[k] = c.ids
	}
	out, err := m.Forward(batch)
	if err != nil {
		return nil, nil, err
	}
	defer out.Release()
	hs := out.HiddenStates
	var h *tensor.Tensor
	switch e.family {
	case SDXL:
		k := len(hs) - 2 - clipSkip
		if k < 0 {
			return nil, nil, fmt.Errorf("textcond: clip_skip %d for a text encoder of %d layers", clipSkip, len(hs)-1)
		}
		h, err = hs[k].Contiguous()
	default:
		if clipSkip == 0 {
			h, err = out.LastHiddenState.Contiguous()
		} else {
			k := len(hs) - 1 - clipSkip
			if k < 0 {
				return nil, nil, fmt.Errorf("textcond: clip_skip %d for a text encoder of %d layers", clipSkip, len(hs)-1)
			}
			h, err = m.FinalNorm(hs[k])
		}
	}
	if err != nil {
		return nil, nil, err
	}
	defer h.Release()
	if h, err = weighted(h, cs); err != nil {
		return nil, nil, err
	}
	defer h.Release()
	ctx, err = h.Reshape(1, -1, h.Dim(2))
	if err != nil {
		return nil, nil, err
	}
	if e.family == SDXL && i == 1 {
		first, err := out.TextEmbeds.Narrow(0, 0, 1)
		if err != nil {
			ctx.Release()
			return nil, nil, err
		}
		pooled, err = first.Contiguous()
		first.Release()
		if err != nil {
			ctx.Release()
			return nil, nil, err
		}
	}
	return ctx, pooled, nil
}

// weighted applies the chunks' token weights to h [chunks, 77, D] as A1111
// does: each chunk's rows are multiplied by their weights, then the chunk is
// scaled so that its mean is what it was before. Chunks whose weights are all 1
// are left exactly as they are. It returns a new tensor.
func weighted(h *tensor.Tensor, cs []chunk) (*tensor.Tensor, error) {
	plain := true
	for _, c := range cs {
		for _, w := range c.weights {
			plain = plain && w == 1
		}
	}
	if plain {
		return h.Contiguous()
	}
	v, err := h.Float32s()
	if err != nil {
		return nil, err
	}
	seq, d := h.Dim(1), h.Dim(2)
	for k, c := range cs {
		z := v[k*seq*d : (k+1)*seq*d]
		var before float64
		for _, x := range z {
			before += float64(x)
		}
		var after float64
		for p := range seq {
			w := c.weights[p]
			row := z[p*d : (p+1)*d]
			for j := range row {
				row[j] *= w
				after += float64(row[j])
			}
		}
		if after == 0 {
			continue
		}
		r := float32(before / after)
		for j := range z {
			z[j] *= r
		}
	}
	return tensor.FromFloat32(h.Backend(), v, h.Shape()...)
}

func withProjection(m *clip.TextModel) bool {
	c := m.Config()
	return c.WithProjection()
}
