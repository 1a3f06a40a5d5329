package lora

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
	"github.com/sdgo/sdgo/tensor/tensortest"
	"github.com/stretchr/testify/require"
)

func f32(shape []int, v []float32) raw {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return raw{safetensors.F32, shape, b}
}

// random makes a tensor of values in [-s, s).
func random(rng *rand.Rand, s float32, shape ...int) raw {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = (rng.Float32()*2 - 1) * s
	}
	return f32(shape, v)
}

func scalar(v float32) raw { return f32([]int{}, []float32{v}) }

// file writes a LoRA file in a temporary folder and returns its path.
func file(t *testing.T, name string, ts map[string]raw) string {
	p := filepath.Join(t.TempDir(), name)
	writeFile(t, p, ts)
	return p
}

// linearModule is a valid kohya module for sd15's first cross-attention key
// projection ([32, 32]).
func linearModule(rng *rand.Rand, prefix string, rank int) map[string]raw {
	return map[string]raw{
		prefix + ".lora_down.weight": random(rng, 0.1, rank, 32),
		prefix + ".lora_up.weight":   random(rng, 0.1, 32, rank),
		prefix + ".alpha":            scalar(float32(rank) / 2),
	}
}

const attn2K = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"

// union returns the tensors of all the maps.
func union(ts ...map[string]raw) map[string]raw {
	out := map[string]raw{}
	for _, m := range ts {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// Bad files and bad uses: each error names the file and the first offending
// key, and nothing is attached: a set attached before stays as it was.
func TestBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	good := linearModule(rng, attn2K, 4)
	nan := linearModule(rng, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v", 4)
	nan["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v.lora_up.weight"].data[4*7+3] = 0x7f
	nan["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v.lora_up.weight"].data[4*7+2] = 0xc0
	for _, c := range []struct {
		name      string
		ts        map[string]raw
		errs      []string // every one appears in the error
		atPrepare bool     // the file reads; Prepare refuses it
	}{
		{"nan.safetensors", union(good, nan), []string{"attn2_to_v.lora_up.weight", "element 7 is NaN"}, false},
		{"rank.safetensors", union(good, map[string]raw{
			"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": random(rng, 0.1, 4, 32, 1, 1),
			"lora_unet_mid_block_attentions_0_proj_in.lora_up.weight":   random(rng, 0.1, 32, 8, 1, 1),
		}), []string{"rank mismatch", "proj_in.lora_down.weight has rank 4", "proj_in.lora_up.weight has rank 8"}, false},
		{"half.safetensors", union(good, map[string]raw{
			"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight": random(rng, 0.1, 4, 32, 1, 1),
		}), []string{"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight", "no up factor"}, false},
		{"alpha.safetensors", union(good, map[string]raw{
			attn2K + "_x.alpha": scalar(1),
		}), []string{attn2K + "_x.alpha", "without lora_down/lora_up"}, false},
		{"unknown.safetensors", union(good, map[string]raw{"lora_unet_foo.weight": scalar(1)}), []string{"lora_unet_foo.weight", "not a LoRA tensor"}, false},
		{"loha.safetensors", union(good, map[string]raw{"lora_unet_x.hada_w1_a": scalar(1)}), []string{"lora_unet_x.hada_w1_a", "LoHa"}, false},
		{"lokr.safetensors", union(good, map[string]raw{"lora_unet_x.lokr_w1": scalar(1)}), []string{"lora_unet_x.lokr_w1", "LoKr"}, false},
		{"dora.safetensors", union(good, map[string]raw{attn2K + ".dora_scale": random(rng, 1, 1, 32)}), []string{attn2K + ".dora_scale", "DoRA"}, false},
		{"te3.safetensors", map[string]raw{"lora_te3_x.lora_down.weight": scalar(1)}, []string{"lora_te3_x.lora_down.weight", "unknown kohya prefix"}, false},
		{"nomodule.safetensors", union(good, linearModule(rng, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_7_attn2_to_k", 4)),
			[]string{"lora_unet_down_blocks_0_attentions_0_transformer_blocks_7_attn2_to_k", "matches no layer of the model's unet"}, true},
		{"shape.safetensors", union(good, map[string]raw{
			"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": random(rng, 0.1, 4, 32),
			"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight":   random(rng, 0.1, 32, 4),
		}), []string{"lora_te_text_model_encoder_layers_0_mlp_fc1", "[32 32] update", "text_model.encoder.layers.0.mlp.fc1.weight is [37 32]"}, true},
		{"te2.safetensors", union(good, linearModule(rng, "lora_te2_text_model_encoder_layers_0_self_attn_q_proj", 4)),
			[]string{"lora_te2_text_model_encoder_layers_0_self_attn_q_proj", "for SDXL models", "the model is SD 1.x"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := file(t, c.name, c.ts)
			l, err := Open(p)
			if c.atPrepare {
				require.NoError(t, err)
				tg := loadTarget(t, "models/sd15")
				ok, oerr := Open(fixture.Path(t, "lora/sd15.b.kohya.safetensors"))
				require.NoError(t, oerr)
				before, perr := Prepare(tg, []Adapter{{LoRA: ok, Scale: 1}})
				require.NoError(t, perr)
				defer before.Release()
				require.NoError(t, before.Attach())
				n := tg.attachedCount()
				require.Positive(t, n)
				k := tg.layer(t, UNet, "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k").(*nn.Linear)
				kAdapters := k.Adapters
				var set *Set
				set, err = Prepare(tg, []Adapter{{LoRA: l, Scale: 1}})
				require.Nil(t, set)
				require.Equal(t, n, tg.attachedCount(), "nothing attached, nothing removed")
				require.Equal(t, kAdapters, k.Adapters)
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), p, "the error names the file")
			for _, s := range c.errs {
				require.Contains(t, err.Error(), s)
			}
		})
	}

	t.Run("scale", func(t *testing.T) {
		p := file(t, "ok.safetensors", good)
		l, err := Open(p)
		require.NoError(t, err)
		tg := loadTarget(t, "models/sd15")
		for _, s := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			_, err := Prepare(tg, []Adapter{{LoRA: l, Scale: 1}, {LoRA: l, Scale: s}})
			require.ErrorContains(t, err, p)
			require.ErrorContains(t, err, "not a finite number")
			require.Zero(t, tg.attachedCount())
		}
	})

	t.Run("not safetensors", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "x.ckpt")
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
		_, err := Open(p)
		require.ErrorContains(t, err, p)
		require.ErrorContains(t, err, ".safetensors")
	})

	t.Run("sd15 LoRA on sdxl", func(t *testing.T) {
		l, err := Open(fixture.Path(t, "lora/sd15.a.diffusers.safetensors"))
		require.NoError(t, err)
		_, err = Prepare(loadTarget(t, "models/sdxl"), []Adapter{{LoRA: l, Scale: 1}})
		require.ErrorContains(t, err, "sd15.a.diffusers.safetensors: unet.down_blocks.0.attentions.0.proj_in: matches no layer of the model's unet")
	})
	t.Run("sdxl LoRA on sd15", func(t *testing.T) {
		l, err := Open(fixture.Path(t, "lora/sdxl.b.kohya.safetensors"))
		require.NoError(t, err)
		fam, key := l.Family()
		require.Equal(t, model.SDXL, fam)
		_, err = Prepare(loadTarget(t, "models/sd15"), []Adapter{{LoRA: l, Scale: 1}})
		require.ErrorContains(t, err, "sdxl.b.kohya.safetensors: "+key+": this LoRA is for SDXL models; the model is SD 1.x")
	})
}

// floats returns a raw F32 tensor's values.
func floats(r raw) []float32 {
	v := make([]float32, len(r.data)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.data[4*i:]))
	}
	return v
}

func fromRaw(t *testing.T, b tensor.Backend, r raw) *tensor.Tensor {
	x, err := tensor.FromFloat32(b, floats(r), r.shape...)
	require.NoError(t, err)
	return x
}

// LoCon modules on a 3x3 convolution, plain and with a Tucker core, under an
// SGM resnet name: the layer adds what the LoRA's layers compute in sequence
// (down, [mid,] up, the 3x3 one with the layer's padding), which is how
// LyCORIS runs them, times scale x alpha/rank.
func TestLoCon(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rank, mult = 4, 0.7
	const plain = "lora_unet_input_blocks_1_0_in_layers_2" // down_blocks.0.resnets.0.conv1
	const tucker = "lora_unet_middle_block_2_out_layers_3" // mid_block.resnets.1.conv2
	ts := map[string]raw{
		plain + ".lora_down.weight":  random(rng, 0.1, rank, 32, 3, 3),
		plain + ".lora_up.weight":    random(rng, 0.1, 32, rank, 1, 1),
		plain + ".alpha":             scalar(2),
		tucker + ".lora_down.weight": random(rng, 0.1, rank, 32, 1, 1),
		tucker + ".lora_mid.weight":  random(rng, 0.1, rank, rank, 3, 3),
		tucker + ".lora_up.weight":   random(rng, 0.1, 32, rank, 1, 1),
	}
	l, err := Open(file(t, "locon.safetensors", ts))
	require.NoError(t, err)
	for _, m := range l.Modules {
		require.True(t, m.Conv(), m.Key)
	}
	tg := loadTarget(t, "models/sdxl")
	set, err := Prepare(tg, []Adapter{{LoRA: l, Scale: mult}})
	require.NoError(t, err)
	defer set.Release()
	require.Equal(t, Stats{Modules: 2, Layers: 2, Params: int64(l.Modules[0].Params() + l.Modules[1].Params()),
		Bytes: 4 * int64(l.Modules[0].Params()+l.Modules[1].Params())}, set.Stats())
	require.NoError(t, set.Attach())

	b := tensor.NewCPU()
	xr := random(rng, 1, 1, 32, 6, 5)
	x := fromRaw(t, b, xr)
	defer x.Release()
	for _, c := range []struct {
		key, layer string
		multiplier float64
		layers     []string // in order
	}{
		{plain, "down_blocks.0.resnets.0.conv1", 2.0 / rank, []string{"lora_down", "lora_up"}},
		{tucker, "mid_block.resnets.1.conv2", 1, []string{"lora_down", "lora_mid", "lora_up"}},
	} {
		conv := tg.layer(t, UNet, c.layer).(*nn.Conv2d)
		require.Len(t, conv.Adapters, 1)
		with, err := conv.Forward(x)
		require.NoError(t, err)
		without, err := tensor.Conv2d(x, conv.Weight, conv.Bias, conv.Params)
		require.NoError(t, err)
		w, wo := values(t, with), values(t, without)
		with.Release()
		without.Release()

		h, shape := floats(xr), xr.shape
		for _, layer := range c.layers {
			f := ts[c.key+"."+layer+".weight"]
			pad := 0
			if f.shape[2] == 3 {
				pad = conv.Params.Padding
			}
			h, shape = tensortest.Conv2d(h, shape, floats(f), f.shape, nil, 1, pad)
		}
		scale := tensortest.MaxAbs(w)
		require.Greater(t, tensortest.MaxAbs(h), 1e-3)
		f := mult * c.multiplier
		for i := range h {
			require.InDelta(t, f*float64(h[i]), float64(w[i])-float64(wo[i]), 2e-6*scale, "%s [%d]", c.key, i)
		}
	}
}

// A LoRA's multiplier: alpha/rank, with no (or zero) alpha meaning rank.
func TestMultiplier(t *testing.T) {
	m := &Module{Rank: 8}
	require.Equal(t, 1.0, m.Multiplier())
	m.HasAlpha, m.Alpha = true, 4
	require.Equal(t, 0.5, m.Multiplier())
	m.Alpha = 0
	require.Equal(t, 1.0, m.Multiplier())
}

func TestKeys(t *testing.T) {
	for name, want := range map[string]key{
		"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight":                    {"lora_unet_down_blocks_0_attentions_0_proj_in", partDown, Kohya},
		"lora_te2_text_model_encoder_layers_0_mlp_fc1.alpha":                               {"lora_te2_text_model_encoder_layers_0_mlp_fc1", partAlpha, Kohya},
		"lora_unet_x.lora_mid.weight":                                                      {"lora_unet_x", partMid, Kohya},
		"unet.mid_block.attentions.0.proj_out.lora.up.weight":                              {"unet.mid_block.attentions.0.proj_out", partUp, Diffusers},
		"text_encoder_2.text_model.encoder.layers.1.mlp.fc2.lora_linear_layer.down.weight": {"text_encoder_2.text_model.encoder.layers.1.mlp.fc2", partDown, Diffusers},
		"unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0.lora_B.weight":  {"unet.up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0", partUp, PEFT},
		"down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight": {
			"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", partDown, Diffusers},
	} {
		got, err := classify(name)
		require.NoError(t, err, name)
		require.Equal(t, want, got, name)
	}
	for mod, want := range map[string][3]string{
		"lora_te_text_model_encoder_layers_0_mlp_fc1":                    {TextEncoder, "text_model_encoder_layers_0_mlp_fc1", "_"},
		"lora_te1_text_model_encoder_layers_0_mlp_fc1":                   {TextEncoder, "text_model_encoder_layers_0_mlp_fc1", "_"},
		"text_encoder.encoder.layers.0.mlp.fc1":                          {TextEncoder, "text_model.encoder.layers.0.mlp.fc1", "."},
		"base_model.model.down_blocks.0.attentions.0.proj_in":            {UNet, "down_blocks.0.attentions.0.proj_in", "."},
		"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0": {UNet, "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0", "."},
	} {
		c, p, u, err := component(mod)
		require.NoError(t, err, mod)
		require.Equal(t, want, [3]string{c, p, map[bool]string{true: "_", false: "."}[u]}, mod)
	}
	_, _, _, err := component("transformer.single_blocks.0.attn.to_q")
	require.ErrorContains(t, err, "cannot tell which network")
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"style.safetensors", "v1.5 detail.safetensors"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub.safetensors"), 0o755))
	for name, want := range map[string]string{
		"style": "style.safetensors", "style.safetensors": "style.safetensors", "v1.5 detail": "v1.5 detail.safetensors",
	} {
		p, err := Resolve(dir, name)
		require.NoError(t, err, name)
		require.Equal(t, filepath.Join(dir, want), p)
	}
	_, err := Resolve(dir, "missing")
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, dir)
	_, err = Resolve(dir, "sub")
	require.ErrorContains(t, err, "not a regular file")
	for _, bad := range []string{"", "../style", "..", "a/b", `a\b`, "/etc/passwd", ".hidden", "C:x", "a\x00b", "a\nb"} {
		_, err := Resolve(dir, bad)
		require.Error(t, err, "%q", bad)
		require.False(t, errors.Is(err, ErrNotFound), "%q is refused before any look-up", bad)
	}
	_, err = Resolve("", "style")
	require.ErrorContains(t, err, "no LoRA folder")
}

func TestParseSpec(t *testing.T) {
	for spec, want := range map[string]struct {
		file  string
		scale float64
	}{
		"a.safetensors":               {"a.safetensors", 1},
		"a.safetensors:0.5":           {"a.safetensors", 0.5},
		"dir/a.safetensors:-1.25":     {"dir/a.safetensors", -1.25},
		`C:\loras\a.safetensors`:      {`C:\loras\a.safetensors`, 1},
		`C:\loras\a.safetensors:2`:    {`C:\loras\a.safetensors`, 2},
		"host:dir/a.safetensors":      {"host:dir/a.safetensors", 1},
		"a.safetensors: 0.75":         {"a.safetensors", 0.75},
		"weird:name/a.safetensors:.5": {"weird:name/a.safetensors", 0.5},
	} {
		f, s, err := ParseSpec(spec)
		require.NoError(t, err, spec)
		require.Equal(t, want.file, f, spec)
		require.Equal(t, want.scale, s, spec)
	}
	for _, bad := range []string{"a.safetensors:x", "a.safetensors:NaN", "a.safetensors:inf", ":0.5", "", "a.safetensors:"} {
		_, _, err := ParseSpec(bad)
		require.Error(t, err, bad)
	}
}

func TestExtractPromptTags(t *testing.T) {
	p, tags, err := ExtractPromptTags("a <lora:style:0.8>photo of a cat, <lora:detail> masterpiece <lora:neg:-0.5>")
	require.NoError(t, err)
	require.Equal(t, "a photo of a cat,  masterpiece", p)
	require.Equal(t, []Tag{{"style", 0.8}, {"detail", 1}, {"neg", -0.5}}, tags)
	p, tags, err = ExtractPromptTags("no tags (here:1.2)")
	require.NoError(t, err)
	require.Equal(t, "no tags (here:1.2)", p)
	require.Empty(t, tags)
	for _, bad := range []string{"<lora:x:abc>", "<lora::1>", "<lora:x", "<lora:x:0.5:1>", "<lora:x:nan>"} {
		_, _, err := ExtractPromptTags(bad)
		require.Error(t, err, bad)
		require.True(t, strings.Contains(err.Error(), "lora"), bad)
	}
}
