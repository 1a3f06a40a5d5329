package textcond

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/tokenizer"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

type family struct {
	enc    *Encoder
	toks   []*tokenizer.Tokenizer
	models []*clip.TextModel
}

func load(t *testing.T, model string, f Family) family {
	t.Helper()
	dir := fixture.Path(t, "models/"+model)
	parts := [][2]string{{"tokenizer", "text_encoder"}}
	if f == SDXL {
		parts = append(parts, [2]string{"tokenizer_2", "text_encoder_2"})
	}
	var fam family
	cpu := tensor.NewCPU()
	for _, p := range parts {
		tok, err := tokenizer.Load(filepath.Join(dir, p[0]))
		require.NoError(t, err)
		cfg, err := clip.LoadConfig(filepath.Join(dir, p[1], "config.json"))
		require.NoError(t, err)
		src, err := weights.OpenSafetensors(filepath.Join(dir, p[1], "model.safetensors"))
		require.NoError(t, err)
		t.Cleanup(func() { src.Close() })
		m, err := clip.Load(weights.Params(src, cpu), cfg)
		require.NoError(t, err)
		t.Cleanup(m.Release)
		fam.toks = append(fam.toks, tok)
		fam.models = append(fam.models, m)
	}
	var err error
	fam.enc, err = New(f, fam.toks, fam.models)
	require.NoError(t, err)
	return fam
}

func vals(t *testing.T, x *tensor.Tensor) []float32 {
	t.Helper()
	v, err := x.Float32s()
	require.NoError(t, err)
	return v
}

// lastHidden runs model i on framed ids and returns the family's chosen state.
func (f family) hidden(t *testing.T, i int, ids []int, fam Family, clipSkip int) []float32 {
	t.Helper()
	out, err := f.models[i].Forward([][]int{ids})
	require.NoError(t, err)
	defer out.Release()
	hs := out.HiddenStates
	if fam == SDXL {
		return vals(t, hs[len(hs)-2-clipSkip])
	}
	if clipSkip == 0 {
		return vals(t, out.LastHiddenState)
	}
	n, err := f.models[i].FinalNorm(hs[len(hs)-1-clipSkip])
	require.NoError(t, err)
	return vals(t, n)
}

const astronaut = "a photo of an astronaut riding a horse on mars"

// A prompt without syntax gives diffusers' embeddings, bit for bit, weighted or plain.
func TestPlainPromptIsDiffusers(t *testing.T) {
	for _, clipSkip := range []int{0, 1} {
		f := load(t, "sd15", SD1)
		ids := f.toks[0].EncodeForModel(astronaut, 77)
		want := f.hidden(t, 0, ids, SD1, clipSkip)
		for _, plain := range []bool{false, true} {
			r, err := f.enc.Encode(astronaut, Options{ClipSkip: clipSkip, Plain: plain})
			require.NoError(t, err)
			require.Equal(t, []int{1, 77, 32}, r.Context.Shape())
			require.Equal(t, want, vals(t, r.Context), "plain %v clip skip %d", plain, clipSkip)
			require.Nil(t, r.Pooled)
		}
	}
}

// A weighted token scales its row, then the chunk is rescaled to its old mean.
func TestWeightingMatchesA1111(t *testing.T) {
	f := load(t, "sd15", SD1)
	r, err := f.enc.Encode("a (horse:1.5) on mars", Options{})
	require.NoError(t, err)
	got := vals(t, r.Context)

	tok := f.toks[0]
	pre, horse, post := tok.Encode("a "), tok.Encode("horse"), tok.Encode(" on mars")
	ids := append(append(append([]int{}, pre...), horse...), post...)
	z := f.hidden(t, 0, tok.Frame(ids, 77), SD1, 0)
	var before, after float64
	for _, x := range z {
		before += float64(x)
	}
	want := make([]float64, len(z))
	for p := range 77 {
		w := 1.0
		if p >= 1+len(pre) && p < 1+len(pre)+len(horse) {
			w = 1.5
		}
		for j := range 32 {
			want[p*32+j] = float64(z[p*32+j]) * w
			after += want[p*32+j]
		}
	}
	changed := 0
	for i := range want {
		want[i] *= before / after
		require.InDelta(t, want[i], float64(got[i]), 1e-5*math.Max(1, math.Abs(want[i])), "element %d", i)
		if float32(want[i]) != z[i] {
			changed++
		}
	}
	require.Positive(t, changed)

	// The plain mode reads the brackets as text.
	p, err := f.enc.Encode("a (horse:1.5) on mars", Options{Plain: true})
	require.NoError(t, err)
	require.Equal(t, f.hidden(t, 0, tok.EncodeForModel("a (horse:1.5) on mars", 77), SD1, 0), vals(t, p.Context))
}

// Long prompts become several 77-token chunks, each encoded on its own; BREAK
// starts a new one; plain mode truncates instead.
func TestLongPromptsAndBreak(t *testing.T) {
	f := load(t, "sd15", SD1)
	tok := f.toks[0]
	long := strings.Repeat("red horse ", 50) // 100 tokens
	ids := tok.Encode(long)
	require.Greater(t, len(ids), 75)
	r, err := f.enc.Encode(long, Options{})
	require.NoError(t, err)
	require.Equal(t, 2, r.Chunks)
	require.Equal(t, []int{1, 154, 32}, r.Context.Shape())
	got := vals(t, r.Context)
	require.Equal(t, f.hidden(t, 0, tok.Frame(ids[:75], 77), SD1, 0), got[:77*32])
	require.Equal(t, f.hidden(t, 0, tok.Frame(ids[75:], 77), SD1, 0), got[77*32:])

	p, err := f.enc.Encode(long, Options{Plain: true})
	require.NoError(t, err)
	require.True(t, p.Truncated)
	require.Equal(t, 1, p.Chunks)

	b, err := f.enc.Encode("a horse BREAK on mars", Options{})
	require.NoError(t, err)
	require.Equal(t, 2, b.Chunks)
	bv := vals(t, b.Context)
	require.Equal(t, f.hidden(t, 0, tok.EncodeForModel("a horse", 77), SD1, 0), bv[:77*32])
	require.Equal(t, f.hidden(t, 0, tok.EncodeForModel("on mars", 77), SD1, 0), bv[77*32:])

	// The negative prompt is padded with empty chunks to the positive's count.
	pos, neg, err := f.enc.EncodePair(Texts{long}, Texts{""}, Options{})
	require.NoError(t, err)
	require.Equal(t, 2, neg.Chunks)
	require.Equal(t, pos.Context.Shape(), neg.Context.Shape())
	empty := f.hidden(t, 0, tok.EncodeForModel("", 77), SD1, 0)
	nv := vals(t, neg.Context)
	require.Equal(t, empty, nv[:77*32])
	require.Equal(t, empty, nv[77*32:])
}

// SDXL: both encoders' penultimate states side by side, pooled from the second.
func TestSDXLConditioning(t *testing.T) {
	f := load(t, "sdxl", SDXL)
	r, err := f.enc.Encode(astronaut, Options{})
	require.NoError(t, err)
	require.Equal(t, []int{1, 77, 64}, r.Context.Shape())
	got := vals(t, r.Context)
	a := f.hidden(t, 0, f.toks[0].EncodeForModel(astronaut, 77), SDXL, 0)
	b := f.hidden(t, 1, f.toks[1].EncodeForModel(astronaut, 77), SDXL, 0)
	for p := range 77 {
		require.Equal(t, a[p*32:(p+1)*32], got[p*64:p*64+32])
		require.Equal(t, b[p*32:(p+1)*32], got[p*64+32:(p+1)*64])
	}
	out, err := f.models[1].Forward([][]int{f.toks[1].EncodeForModel(astronaut, 77)})
	require.NoError(t, err)
	require.Equal(t, vals(t, out.TextEmbeds), vals(t, r.Pooled))
}

func TestBadOptions(t *testing.T) {
	f := load(t, "sd15", SD1)
	_, err := f.enc.Encode("x", Options{ClipSkip: -1})
	require.ErrorContains(t, err, "negative")
	_, err = f.enc.Encode("x", Options{ClipSkip: 4}) // the tiny encoder has 3 layers
	require.ErrorContains(t, err, "clip_skip 4")
	_, err = New(SDXL, f.toks, f.models)
	require.ErrorContains(t, err, "1 tokenizers and 1 text models")
	// Absurd weights stay finite.
	r, err := f.enc.Encode("(x:1e30) (y:-1000000) \x00 \xff", Options{})
	require.NoError(t, err)
	for _, v := range vals(t, r.Context) {
		require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0))
	}
}

// SDXL's encoders may get different prompts (prompt and prompt_2); the shorter
// is padded with empty chunks so the two contexts line up.
func TestSDXLTwoPrompts(t *testing.T) {
	f := load(t, "sdxl", SDXL)
	long := strings.Repeat("red horse ", 50)
	r, err := f.enc.EncodeTexts(Texts{astronaut, long}, Options{})
	require.NoError(t, err)
	require.Equal(t, 2, r.Chunks)
	require.Equal(t, []int{1, 154, 64}, r.Context.Shape())
	got := vals(t, r.Context)
	a := f.hidden(t, 0, f.toks[0].EncodeForModel(astronaut, 77), SDXL, 0)
	for p := range 77 {
		require.Equal(t, a[p*32:(p+1)*32], got[p*64:p*64+32])
	}
}

// A prompt of over 10 000 tokens is encoded in chunks of 75, without error;
// plain mode truncates it to one.
func TestVeryLongPrompt(t *testing.T) {
	f := load(t, "sd15", SD1)
	long := strings.Repeat("horse ", 10000)
	n := len(f.toks[0].Encode(long))
	require.GreaterOrEqual(t, n, 10000)
	chunks := (n + 74) / 75
	r, err := f.enc.Encode(long, Options{})
	require.NoError(t, err)
	require.Equal(t, chunks, r.Chunks)
	require.Equal(t, []int{1, chunks * 77, 32}, r.Context.Shape())
	p, err := f.enc.Encode(long, Options{Plain: true})
	require.NoError(t, err)
	require.True(t, p.Truncated)
	require.Equal(t, []int{1, 77, 32}, p.Context.Shape())
}
