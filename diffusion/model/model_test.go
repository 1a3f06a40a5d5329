package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

var folders = []string{"sd15", "sd15-inpaint", "sd21-v", "sdxl", "sdxl-inpaint"}

func load(t *testing.T, path string, opts Options) *Model {
	t.Helper()
	m, err := Load(path, opts)
	require.NoError(t, err, path)
	t.Cleanup(func() { m.Close() })
	return m
}

// fileNames lists the tensors of a safetensors file.
func fileNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	defer f.Close()
	return f.Names()
}

// sameWeights checks that got holds exactly want's tensors under the same names,
// with the same shapes and bit-identical values: the same dtype, or, where the
// dtypes differ, the same values once both are widened to float32.
func sameWeights(t *testing.T, label string, want, got weights.Source) {
	t.Helper()
	require.Equal(t, want.Names(), got.Names(), "%s: tensor names", label)
	cpu := tensor.NewCPU()
	for _, n := range want.Names() {
		wi, _ := want.Info(n)
		gi, ok := got.Info(n)
		require.True(t, ok, "%s: %s", label, n)
		require.Equal(t, wi.Shape, gi.Shape, "%s: %s: shape", label, n)
		wt, err := want.Load(n, cpu)
		require.NoError(t, err)
		gt, err := got.Load(n, cpu)
		require.NoError(t, err, "%s: %s", label, n)
		require.Equal(t, wi.Shape, gt.Shape(), "%s: %s: loaded shape", label, n)
		if wi.DType == gi.DType {
			require.Equal(t, wt.DType(), gt.DType(), "%s: %s: dtype", label, n)
		}
		wv, err := wt.Float32s()
		require.NoError(t, err)
		gv, err := gt.Float32s()
		require.NoError(t, err)
		require.Equal(t, len(wv), len(gv))
		for i := range wv {
			if math.Float32bits(wv[i]) != math.Float32bits(gv[i]) {
				require.Failf(t, "values differ", "%s: %s[%d]: want %v, got %v", label, n, i, wv[i], gv[i])
			}
		}
		wt.Release()
		gt.Release()
	}
}

// sameModel checks that two loads of one model hold the same architecture and
// weights.
func sameModel(t *testing.T, want, got *Model) {
	t.Helper()
	require.Equal(t, want.Family, got.Family)
	require.Equal(t, want.Inpaint, got.Inpaint)
	require.Equal(t, want.UNet, got.UNet)
	require.Equal(t, want.VAE, got.VAE)
	require.Equal(t, want.PredictionType, got.PredictionType)
	require.Equal(t, want.SchedulerClass, got.SchedulerClass)
	sameWeights(t, got.Path+" unet", want.UNetWeights, got.UNetWeights)
	sameWeights(t, got.Path+" vae", want.VAEWeights, got.VAEWeights)
	require.Len(t, got.TextEncoders, len(want.TextEncoders))
	for i, te := range want.TextEncoders {
		g := got.TextEncoders[i]
		require.Equal(t, te.Name, g.Name)
		require.Equal(t, te.Class, g.Class)
		require.Equal(t, te.Config, g.Config)
		sameWeights(t, got.Path+" "+te.Name, te.Weights, g.Weights)
	}
}

func TestFolders(t *testing.T) {
	for _, name := range folders {
		t.Run(name, func(t *testing.T) {
			dir := fixture.Path(t, "models/"+name)
			m := load(t, dir, Options{})
			require.Equal(t, Folder, m.Layout)
			require.Equal(t, dir, m.Path)
			require.Equal(t, dir, m.ConfigDir)
			require.Empty(t, m.Unused)
			require.Empty(t, m.Notes)

			u, err := unet.LoadConfig(filepath.Join(dir, "unet", "config.json"))
			require.NoError(t, err)
			require.Equal(t, u, m.UNet)
			v, err := vae.LoadConfig(filepath.Join(dir, "vae", "config.json"))
			require.NoError(t, err)
			require.Equal(t, v, m.VAE)
			sc, err := os.ReadFile(filepath.Join(dir, "scheduler", "scheduler_config.json"))
			require.NoError(t, err)
			require.Equal(t, sc, m.SchedulerConfig, "the scheduler config is kept as stored")

			// Every component's names are exactly those of the folder's files.
			require.Equal(t, fileNames(t, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")), m.UNetWeights.Names())
			require.Equal(t, fileNames(t, filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors")), m.VAEWeights.Names())
			for _, te := range m.TextEncoders {
				p := filepath.Join(dir, te.Name, "model.safetensors")
				require.Equal(t, fileNames(t, p), te.Weights.Names())
				c, err := clip.LoadConfig(filepath.Join(dir, te.Name, "config.json"))
				require.NoError(t, err)
				require.Equal(t, c, te.Config)
			}
			parts := m.Parts()
			require.Equal(t, "unet", parts[0].Name)
			require.Equal(t, "UNet2DConditionModel", parts[0].Class)
			require.Equal(t, []string{filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")}, parts[0].Files)
			require.Equal(t, "AutoencoderKL", parts[1].Class)

			switch name {
			case "sd15", "sd15-inpaint":
				require.Equal(t, SD1, m.Family)
				require.Equal(t, name == "sd15-inpaint", m.Inpaint)
				require.Equal(t, Epsilon, m.PredictionType)
				require.Equal(t, "PNDMScheduler", m.SchedulerClass)
				require.Len(t, m.TextEncoders, 1)
				require.Equal(t, "CLIPTextModel", m.TextEncoders[0].Class)
				require.Equal(t, filepath.Join(dir, "tokenizer"), m.TextEncoders[0].Tokenizer)
				require.Len(t, parts, 3)
			case "sd21-v":
				require.Equal(t, SD2, m.Family)
				require.False(t, m.Inpaint)
				require.Equal(t, VPrediction, m.PredictionType)
				require.Equal(t, "DDIMScheduler", m.SchedulerClass)
				require.Equal(t, "gelu", m.TextEncoders[0].Config.HiddenAct)
			case "sdxl", "sdxl-inpaint":
				require.Equal(t, SDXL, m.Family)
				require.Equal(t, name == "sdxl-inpaint", m.Inpaint)
				require.Equal(t, "EulerDiscreteScheduler", m.SchedulerClass)
				require.True(t, m.Index.ForceZerosForEmptyPrompt)
				require.False(t, m.Index.RequiresAestheticsScore)
				require.Len(t, m.TextEncoders, 2)
				require.Equal(t, "text_encoder_2", m.TextEncoders[1].Name)
				require.Equal(t, "CLIPTextModelWithProjection", m.TextEncoders[1].Class)
				require.True(t, m.TextEncoders[1].Config.WithProjection())
				require.Equal(t, filepath.Join(dir, "tokenizer_2"), m.TextEncoders[1].Tokenizer)
				require.Contains(t, m.TextEncoders[1].Weights.Names(), "text_projection.weight")
				require.Len(t, parts, 4)
				if name == "sdxl-inpaint" {
					require.Equal(t, "StableDiffusionXLInpaintPipeline", m.Index.ClassName)
				}
			}
			require.NoError(t, m.Close())
			require.NoError(t, m.Close(), "Close twice")
		})
	}
}

func TestSingleFiles(t *testing.T) {
	for _, name := range []string{"sd15", "sd21-v", "sdxl"} {
		t.Run(name, func(t *testing.T) {
			dir := fixture.Path(t, "models/"+name)
			file := fixture.Path(t, "models/"+name+".single.safetensors")
			folder := load(t, dir, Options{})
			single := load(t, file, Options{Config: dir})
			require.Equal(t, SingleFile, single.Layout)
			require.Equal(t, file, single.Path)
			require.Equal(t, dir, single.ConfigDir)
			require.Empty(t, single.Unused, "every tensor of the file is used")
			require.Equal(t, folder.Index, single.Index)
			require.Equal(t, folder.SchedulerConfig, single.SchedulerConfig)
			for i, te := range folder.TextEncoders {
				require.Equal(t, te.Tokenizer, single.TextEncoders[i].Tokenizer, "a Config folder's tokenizers are used")
			}
			sameModel(t, folder, single)
			for _, p := range single.Parts() {
				require.Equal(t, []string{file}, p.Files)
			}
		})
	}
}

func TestDetectFamily(t *testing.T) {
	for _, tc := range []struct {
		file string
		f    Family
	}{{"sd15", SD1}, {"sd21-v", SD2}, {"sdxl", SDXL}} {
		src, err := weights.OpenSafetensors(fixture.Path(t, "models/"+tc.file+".single.safetensors"))
		require.NoError(t, err)
		f, inpaint, err := detectFamily(src, tc.file)
		src.Close()
		require.NoError(t, err)
		require.Equal(t, tc.f, f)
		require.False(t, inpaint)
	}
	// Keys alone: an SDXL refiner, an inpainting SD 1.x file, a UNet-only SD 2.x
	// file (told by its 1024-wide cross-attention).
	for _, tc := range []struct {
		names   map[string][]int
		f       Family
		inpaint bool
	}{
		{map[string][]int{prefixUNet + "input_blocks.0.0.weight": {384, 4, 3, 3}, prefixRefiner2 + "positional_embedding": {77, 1280}}, SDXLRefiner, false},
		{map[string][]int{prefixUNet + "input_blocks.0.0.weight": {320, 9, 3, 3}, prefixSD1Text + "text_model.final_layer_norm.weight": {768}}, SD1, true},
		{map[string][]int{prefixUNet + "input_blocks.0.0.weight": {320, 4, 3, 3}, prefixUNet + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": {320, 1024}}, SD2, false},
		{map[string][]int{prefixUNet + "input_blocks.0.0.weight": {320, 9, 3, 3}, prefixXLText1 + "x": {1}, prefixXLText2 + "positional_embedding": {77, 1280}}, SDXL, true},
	} {
		f, inpaint, err := detectFamily(fakeSource(tc.names), "fake")
		require.NoError(t, err)
		require.Equal(t, tc.f, f)
		require.Equal(t, tc.inpaint, inpaint)
	}
	_, _, err := detectFamily(fakeSource(map[string][]int{prefixUNet + "input_blocks.0.0.weight": {320, 8, 3, 3}}), "p2p.safetensors")
	require.ErrorIs(t, err, ErrUnknownModel)
	require.ErrorContains(t, err, "8 input channels")
}

// fakeSource describes tensors without data, for the functions that read
// only names and shapes.
type fakeSource map[string][]int

func (f fakeSource) Names() []string {
	var n []string
	for k := range f {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
func (f fakeSource) Info(name string) (weights.Info, bool) {
	s, ok := f[name]
	return weights.Info{DType: safetensors.F16, Shape: s}, ok
}
func (f fakeSource) Load(name string, b tensor.Backend) (*tensor.Tensor, error) {
	return nil, errors.New("fake")
}
func (f fakeSource) Close() error { return nil }

func TestUNetKeyMap(t *testing.T) {
	sd15, xl := unet.SD15(), unet.SDXL()
	for _, tc := range []struct {
		c        unet.Config
		ldm, dif string
	}{
		{sd15, "time_embed.0.weight", "time_embedding.linear_1.weight"},
		{sd15, "time_embed.2.bias", "time_embedding.linear_2.bias"},
		{sd15, "input_blocks.0.0.weight", "conv_in.weight"},
		{sd15, "input_blocks.1.0.in_layers.0.weight", "down_blocks.0.resnets.0.norm1.weight"},
		{sd15, "input_blocks.2.1.proj_in.weight", "down_blocks.0.attentions.1.proj_in.weight"},
		{sd15, "input_blocks.3.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"},
		{sd15, "input_blocks.4.0.skip_connection.bias", "down_blocks.1.resnets.0.conv_shortcut.bias"},
		{sd15, "input_blocks.8.1.transformer_blocks.0.attn2.to_k.weight", "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight"},
		{sd15, "input_blocks.11.0.emb_layers.1.weight", "down_blocks.3.resnets.1.time_emb_proj.weight"},
		{sd15, "middle_block.0.out_layers.3.weight", "mid_block.resnets.0.conv2.weight"},
		{sd15, "middle_block.1.transformer_blocks.0.ff.net.0.proj.weight", "mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight"},
		{sd15, "middle_block.2.in_layers.2.bias", "mid_block.resnets.1.conv1.bias"},
		{sd15, "output_blocks.0.0.out_layers.0.weight", "up_blocks.0.resnets.0.norm2.weight"},
		{sd15, "output_blocks.2.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"},
		{sd15, "output_blocks.5.1.norm.bias", "up_blocks.1.attentions.2.norm.bias"},
		{sd15, "output_blocks.5.2.conv.bias", "up_blocks.1.upsamplers.0.conv.bias"},
		{sd15, "output_blocks.11.1.proj_out.weight", "up_blocks.3.attentions.2.proj_out.weight"},
		{sd15, "out.0.weight", "conv_norm_out.weight"},
		{sd15, "out.2.bias", "conv_out.bias"},
		{xl, "label_emb.0.0.weight", "add_embedding.linear_1.weight"},
		{xl, "label_emb.0.2.bias", "add_embedding.linear_2.bias"},
		{xl, "input_blocks.3.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"},
		{xl, "input_blocks.7.1.transformer_blocks.9.attn1.to_q.weight", "down_blocks.2.attentions.0.transformer_blocks.9.attn1.to_q.weight"},
		{xl, "middle_block.1.transformer_blocks.9.norm3.weight", "mid_block.attentions.0.transformer_blocks.9.norm3.weight"},
		{xl, "output_blocks.2.2.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"},
		{xl, "output_blocks.8.0.skip_connection.weight", "up_blocks.2.resnets.2.conv_shortcut.weight"},
	} {
		got, err := unetName(tc.ldm, tc.c, layoutOf(tc.c))
		require.NoError(t, err, tc.ldm)
		require.Equal(t, tc.dif, got, tc.ldm)
	}
	for _, tc := range []struct {
		c        unet.Config
		ldm, err string
	}{
		{sd15, "input_blocks.12.0.in_layers.0.weight", "input block 12 does not exist"},
		{sd15, "output_blocks.12.0.in_layers.0.weight", "output block 12 does not exist"},
		{sd15, "input_blocks.3.0.in_layers.0.weight", "downsampler of level 0"},
		{sd15, "input_blocks.10.1.proj_in.weight", "no place for it in down block 3 (DownBlock2D)"},
		{sd15, "label_emb.0.0.weight", "no addition_embed_type or class_embed_type"},
		{sd15, "input_blocks.1.0.mystery.weight", "no place for it"},
		{sd15, "something.weight", "not a UNet parameter"},
	} {
		_, err := unetName(tc.ldm, tc.c, layoutOf(tc.c))
		require.ErrorContains(t, err, tc.err, tc.ldm)
	}
}

func TestVAEAndTextKeyMaps(t *testing.T) {
	c := vae.SD()
	for _, tc := range []struct {
		ldm, dif string
		reshape  bool
	}{
		{"encoder.norm_out.weight", "encoder.conv_norm_out.weight", false},
		{"encoder.down.2.block.1.nin_shortcut.weight", "encoder.down_blocks.2.resnets.1.conv_shortcut.weight", false},
		{"encoder.down.0.downsample.conv.bias", "encoder.down_blocks.0.downsamplers.0.conv.bias", false},
		{"decoder.up.3.block.2.conv1.weight", "decoder.up_blocks.0.resnets.2.conv1.weight", false},
		{"decoder.up.1.upsample.conv.weight", "decoder.up_blocks.2.upsamplers.0.conv.weight", false},
		{"decoder.mid.block_2.norm2.bias", "decoder.mid_block.resnets.1.norm2.bias", false},
		{"encoder.mid.attn_1.q.weight", "encoder.mid_block.attentions.0.to_q.weight", true},
		{"encoder.mid.attn_1.q.bias", "encoder.mid_block.attentions.0.to_q.bias", false},
		{"decoder.mid.attn_1.proj_out.weight", "decoder.mid_block.attentions.0.to_out.0.weight", true},
		{"decoder.mid.attn_1.norm.weight", "decoder.mid_block.attentions.0.group_norm.weight", false},
		{"post_quant_conv.weight", "post_quant_conv.weight", false},
	} {
		got, reshape, ignore, err := vaeName(tc.ldm, c)
		require.NoError(t, err, tc.ldm)
		require.False(t, ignore)
		require.Equal(t, tc.dif, got, tc.ldm)
		require.Equal(t, tc.reshape, reshape, tc.ldm)
	}
	_, _, ignore, err := vaeName("loss.discriminator.main.0.weight", c)
	require.NoError(t, err)
	require.True(t, ignore)
	_, _, _, err = vaeName("encoder.down.4.block.0.conv1.weight", c)
	require.ErrorContains(t, err, "level 4 in a VAE of 4 levels")
	_, _, _, err = vaeName("encoder.down.0.block.2.conv1.weight", c)
	require.ErrorContains(t, err, "unknown resnet parameter", "the encoder has 2 resnets per level")
	got, _, _, err := vaeName("decoder.up.0.block.2.conv1.weight", c)
	require.NoError(t, err, "the decoder has 3")
	require.Equal(t, "decoder.up_blocks.3.resnets.2.conv1.weight", got)

	vitl := clip.ViTL14()
	require.Equal(t, "text_model.encoder.layers.11.mlp.fc1.weight", clipName("text_model.encoder.layers.11.mlp.fc1.weight", vitl))
	require.Equal(t, "text_model.embeddings.token_embedding.weight", clipName("embeddings.token_embedding.weight", vitl), "old transformers files lack text_model.")
	require.Equal(t, "", clipName("text_model.embeddings.position_ids", vitl))
	require.Equal(t, "", clipName("text_model.encoder.layers.12.mlp.fc1.weight", vitl))
	require.Equal(t, "text_model.encoder.layers.3.x", textCanonicalName("encoder.layers.3.x"))
	require.Equal(t, "text_projection.weight", textCanonicalName("text_projection.weight"))
	require.Equal(t, "decoder.mid_block.attentions.0.to_out.0.weight", vaeCurrentName("decoder.mid_block.attentions.0.proj_attn.weight"))
	require.Equal(t, "encoder.mid_block.attentions.0.to_k.bias", vaeCurrentName("encoder.mid_block.attentions.0.key.bias"))
	require.Equal(t, "encoder.down_blocks.0.resnets.0.conv1.weight", vaeCurrentName("encoder.down_blocks.0.resnets.0.conv1.weight"))

	// OpenCLIP: the fused projection splits into q, k, v; the projection is
	// transposed; blocks beyond num_hidden_layers are not used.
	h := clip.OpenCLIPH14() // 23 of 24 blocks, no projection
	m := newMapping()
	used, err := openCLIPEntries(m, "transformer.resblocks.22.attn.in_proj_weight", "w", weights.Info{DType: safetensors.F16, Shape: []int{3072, 1024}}, h)
	require.NoError(t, err)
	require.True(t, used)
	k := m.entries["text_model.encoder.layers.22.self_attn.k_proj.weight"]
	require.Equal(t, entry{from: "w", op: opRows, start: 1024, n: 1024, info: weights.Info{DType: safetensors.F16, Shape: []int{1024, 1024}}}, k)
	used, err = openCLIPEntries(m, "transformer.resblocks.23.attn.in_proj_weight", "w23", weights.Info{Shape: []int{3072, 1024}}, h)
	require.NoError(t, err)
	require.False(t, used, "SD 2.x uses 23 of the 24 blocks")
	used, err = openCLIPEntries(m, "text_projection", "p", weights.Info{Shape: []int{1024, 1024}}, h)
	require.NoError(t, err)
	require.False(t, used, "SD 2.x has no projection")
	g := clip.OpenCLIPBigG14()
	used, err = openCLIPEntries(m, "text_projection", "p", weights.Info{Shape: []int{1280, 1280}}, g)
	require.NoError(t, err)
	require.True(t, used)
	require.Equal(t, opTranspose, m.entries["text_projection.weight"].op)
	_, err = openCLIPEntries(m, "transformer.resblocks.0.attn.in_proj_bias", "b", weights.Info{Shape: []int{3000}}, g)
	require.ErrorContains(t, err, "want [3 x 1280")
	_, err = openCLIPEntries(m, "transformer.resblocks.0.attn.mystery", "b", weights.Info{Shape: []int{1}}, g)
	require.ErrorContains(t, err, "unknown text encoder parameter")
}

// copyTree copies a fixture folder to a temporary one.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
	require.NoError(t, err)
	return dst
}

// rewrite writes the tensors of the safetensors file src to dst (which may be
// src), renamed by rename ("" drops a tensor) and optionally reshaped, plus
// extra tensors.
func rewrite(t *testing.T, src, dst string, rename func(string) string, reshape func(string, []int) []int, extra ...safetensors.Tensor) {
	t.Helper()
	f, err := safetensors.Open(src)
	require.NoError(t, err)
	var ts []safetensors.Tensor
	for _, n := range f.Names() {
		to := n
		if rename != nil {
			to = rename(n)
		}
		if to == "" {
			continue
		}
		info, _ := f.Info(n)
		b, err := f.Bytes(n)
		require.NoError(t, err)
		shape := info.Shape
		if reshape != nil {
			shape = reshape(n, shape)
		}
		ts = append(ts, safetensors.Tensor{Name: to, DType: info.DType, Shape: shape, Data: slices.Clone(b)})
	}
	require.NoError(t, f.Close())
	require.NoError(t, safetensors.WriteFile(dst, append(ts, extra...), nil))
}

func TestTransformers5TextEncoders(t *testing.T) {
	for _, name := range []string{"sd15", "sdxl"} {
		orig := fixture.Path(t, "models/"+name)
		dir := copyTree(t, orig)
		for _, te := range []string{"text_encoder", "text_encoder_2"} {
			p := filepath.Join(dir, te, "model.safetensors")
			if _, err := os.Stat(p); err != nil {
				continue
			}
			rewrite(t, p, p, func(n string) string { return strings.TrimPrefix(n, "text_model.") }, nil)
			require.NotContains(t, fileNames(t, p)[0], "text_model.")
		}
		sameModel(t, load(t, orig, Options{}), load(t, dir, Options{}))
	}
}

func TestOldDiffusersVAENames(t *testing.T) {
	orig := fixture.Path(t, "models/sd15")
	dir := copyTree(t, orig)
	p := filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors")
	rewrite(t, p, p, func(n string) string {
		r := strings.NewReplacer(".to_q.", ".query.", ".to_k.", ".key.", ".to_v.", ".value.", ".to_out.0.", ".proj_attn.")
		return r.Replace(n)
	}, nil)
	require.Contains(t, fileNames(t, p), "decoder.mid_block.attentions.0.proj_attn.weight")
	sameModel(t, load(t, orig, Options{}), load(t, dir, Options{}))
}

// shard splits a safetensors file into two shards and an index, as
// save_pretrained does, and removes it.
func shard(t *testing.T, file, base, indexName string) {
	t.Helper()
	names := fileNames(t, file)
	half := len(names) / 2
	dir := filepath.Dir(file)
	shards := []string{base + "-00001-of-00002.safetensors", base + "-00002-of-00002.safetensors"}
	wm := map[string]string{}
	for i, n := range names {
		wm[n] = shards[min(i/half, 1)]
	}
	for k, s := range shards {
		rewrite(t, file, filepath.Join(dir, s), func(n string) string {
			if wm[n] == shards[k] {
				return n
			}
			return ""
		}, nil)
	}
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 1}, "weight_map": wm})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, indexName), b, 0o644))
	require.NoError(t, os.Remove(file))
}

func TestShardedAndVariants(t *testing.T) {
	orig := fixture.Path(t, "models/sdxl")
	want := load(t, orig, Options{})

	dir := copyTree(t, orig)
	shard(t, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"), "diffusion_pytorch_model", "diffusion_pytorch_model.safetensors.index.json")
	shard(t, filepath.Join(dir, "text_encoder_2", "model.safetensors"), "model", "model.safetensors.index.json")
	got := load(t, dir, Options{})
	sameModel(t, want, got)
	require.Len(t, got.Parts()[0].Files, 2)
	require.Equal(t, filepath.Join(dir, "unet", "diffusion_pytorch_model-00001-of-00002.safetensors"), got.Parts()[0].Files[0])

	// A variant: the UNet (sharded) and VAE as fp16 files; the text encoders
	// have none and fall back, with a note.
	vdir := copyTree(t, orig)
	require.NoError(t, os.Rename(filepath.Join(vdir, "vae", "diffusion_pytorch_model.safetensors"), filepath.Join(vdir, "vae", "diffusion_pytorch_model.fp16.safetensors")))
	shard(t, filepath.Join(vdir, "unet", "diffusion_pytorch_model.safetensors"), "diffusion_pytorch_model.fp16", "diffusion_pytorch_model.safetensors.index.fp16.json")
	got = load(t, vdir, Options{Variant: "fp16"})
	sameModel(t, want, got)
	require.Equal(t, []string{filepath.Join(vdir, "vae", "diffusion_pytorch_model.fp16.safetensors")}, got.Parts()[1].Files)
	require.Len(t, got.Notes, 2)
	require.Contains(t, got.Notes[0], `text_encoder: no "fp16" variant`)
	require.Contains(t, got.Notes[0], "using model.safetensors")

	// Without the variant asked for, the UNet has no weights: the error says
	// what is there.
	_, err := Load(vdir, Options{})
	require.ErrorContains(t, err, filepath.Join(vdir, "unet")+": no weights for component unet")
	require.ErrorContains(t, err, "found only diffusion_pytorch_model.fp16-00001-of-00002.safetensors, diffusion_pytorch_model.fp16-00002-of-00002.safetensors, diffusion_pytorch_model.safetensors.index.fp16.json")
	require.ErrorContains(t, err, "Options.Variant")

	// A variant that no component has: every component falls back.
	got = load(t, orig, Options{Variant: "bf16"})
	require.Len(t, got.Notes, 4)
}

func TestShardErrors(t *testing.T) {
	orig := fixture.Path(t, "models/sd15")
	dir := copyTree(t, orig)
	udir := filepath.Join(dir, "unet")
	shard(t, filepath.Join(udir, "diffusion_pytorch_model.safetensors"), "diffusion_pytorch_model", "diffusion_pytorch_model.safetensors.index.json")
	index := filepath.Join(udir, "diffusion_pytorch_model.safetensors.index.json")
	good, err := os.ReadFile(index)
	require.NoError(t, err)
	for _, tc := range []struct {
		edit func(map[string]string)
		want string
	}{
		{func(wm map[string]string) { wm["conv_in.weight"] = "../../x.safetensors" }, `puts "conv_in.weight" in "../../x.safetensors", which is not a file of this folder`},
		{func(wm map[string]string) { wm["conv_in.weight"] = "missing.safetensors" }, "names shard missing.safetensors, which is missing"},
		{func(wm map[string]string) {
			for k, v := range wm {
				if strings.HasSuffix(v, "00001-of-00002.safetensors") {
					wm[k] = "diffusion_pytorch_model-00002-of-00002.safetensors"
					break
				}
			}
		}, "which has no such tensor"},
	} {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		require.NoError(t, json.Unmarshal(good, &idx))
		tc.edit(idx.WeightMap)
		b, _ := json.Marshal(idx)
		require.NoError(t, os.WriteFile(index, b, 0o644))
		_, err := Load(dir, Options{})
		require.ErrorContains(t, err, index)
		require.ErrorContains(t, err, tc.want)
	}
	require.NoError(t, os.WriteFile(index, []byte(`{"weight_map": {}}`), 0o644))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, index+": no weight_map")
}

func TestFolderErrors(t *testing.T) {
	orig := fixture.Path(t, "models/sd15")

	dir := copyTree(t, orig)
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "vae")))
	_, err := Load(dir, Options{})
	require.ErrorContains(t, err, filepath.Join(dir, "vae")+": component vae (AutoencoderKL) is listed in model_index.json but its folder is missing")

	dir = copyTree(t, orig)
	require.NoError(t, os.Remove(filepath.Join(dir, "text_encoder", "model.safetensors")))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, filepath.Join(dir, "text_encoder")+": no weights for component text_encoder: want one of")

	dir = copyTree(t, orig)
	cfg := filepath.Join(dir, "unet", "config.json")
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, b[:len(b)/2], 0o644))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, cfg+": not a JSON object")

	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), `"cross_attention_dim": 32`, `"cross_attention_dim": "wide"`, 1)), 0o644))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, cfg+`: key "cross_attention_dim": "wide": want an integer or a list of integers`)

	// A config that parses but does not fit the weights.
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), `"cross_attention_dim": 32`, `"cross_attention_dim": 64`, 1)), 0o644))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")+`: unet: tensor "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight" has shape [32 32]; the config implies [32 64]`)

	dir = copyTree(t, orig)
	idx := filepath.Join(dir, "model_index.json")
	require.NoError(t, os.WriteFile(idx, []byte(`{"_class_name": "StableDiffusionPipeline", "vae": ["diffusers", "AutoencoderKL"]}`), 0o644))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, dir+": model_index.json lists no unet component")
	require.NoError(t, os.WriteFile(idx, []byte(`{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DModel"]}`), 0o644))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, "component unet is a UNet2DModel; want UNet2DConditionModel")
	require.NoError(t, os.WriteFile(idx, []byte(`{"_class_name": `), 0o644))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, idx+": not a JSON object")
	require.NoError(t, os.Remove(idx))
	_, err = Load(dir, Options{})
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, idx)

	_, err = Load(orig, Options{Config: orig})
	require.ErrorContains(t, err, "Options.Config applies to single files only")
	_, err = Load(orig, Options{PredictionType: "x0"})
	require.ErrorContains(t, err, `prediction type "x0"`)
	_, err = Load(filepath.Join(orig, "model_index.json"), Options{})
	require.ErrorContains(t, err, `unknown file type ".json"`)
	_, err = Load(filepath.Join(t.TempDir(), "nothing"), Options{})
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestSingleFileErrors(t *testing.T) {
	// A safetensors file of random keys.
	junk := filepath.Join(t.TempDir(), "junk.safetensors")
	require.NoError(t, safetensors.WriteFile(junk, []safetensors.Tensor{
		safetensors.F32Tensor("encoder.layer.0.weight", []int{2, 2}, []float32{1, 2, 3, 4}),
		safetensors.F32Tensor("lm_head.bias", []int{2}, []float32{1, 2}),
	}, nil))
	_, err := Load(junk, Options{})
	require.ErrorIs(t, err, ErrUnknownModel)
	require.ErrorContains(t, err, junk+": not a recognised Stable Diffusion checkpoint: no UNet weights (model.diffusion_model.*)")
	require.ErrorContains(t, err, `"encoder.layer.0.weight"`)

	sd15 := fixture.Path(t, "models/sd15.single.safetensors")
	// The tiny file against the real SD 1.5 architecture: a clear shape error.
	_, err = Load(sd15, Options{})
	require.ErrorContains(t, err, sd15+`: unet: tensor "conv_in.weight" has shape [32 4 3 3]; the config implies [320 4 3 3]`)
	// Another family's config.
	_, err = Load(sd15, Options{Config: fixture.Path(t, "models/sdxl")})
	require.ErrorContains(t, err, sd15+" holds SD 1.x weights, but the config folder")
	require.ErrorContains(t, err, "describes SDXL")
	_, err = Load(sd15, Options{Config: fixture.Path(t, "models/sd15-inpaint")})
	require.ErrorContains(t, err, "describes SD 1.x inpainting")
	// A config of the same family whose layout does not fit the file.
	dir := copyTree(t, fixture.Path(t, "models/sd15"))
	cfg := filepath.Join(dir, "unet", "config.json")
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, []byte(strings.Replace(string(b), `"layers_per_block": 2`, `"layers_per_block": 1`, 1)), 0o644))
	_, err = Load(sd15, Options{Config: dir})
	require.ErrorContains(t, err, sd15+`: tensor "model.diffusion_model.input_blocks.`)
	require.ErrorContains(t, err, "mapping onto the architecture of "+dir)

	// A file without its VAE.
	novae := filepath.Join(t.TempDir(), "novae.safetensors")
	rewrite(t, sd15, novae, func(n string) string {
		if strings.HasPrefix(n, "first_stage_model.") {
			return ""
		}
		return n
	}, nil)
	_, err = Load(novae, Options{Config: fixture.Path(t, "models/sd15")})
	require.ErrorContains(t, err, novae+": no VAE weights (first_stage_model.*)")

	// A text encoder block missing: the check names the tensor.
	short := filepath.Join(t.TempDir(), "short.safetensors")
	rewrite(t, fixture.Path(t, "models/sd21-v.single.safetensors"), short, func(n string) string {
		if strings.Contains(n, "resblocks.2.") {
			return ""
		}
		return n
	}, nil)
	_, err = Load(short, Options{Config: fixture.Path(t, "models/sd21-v")})
	require.ErrorContains(t, err, short+`: text_encoder: no tensor "text_model.encoder.layers.2.self_attn.q_proj.weight", which the config implies (num_hidden_layers 3)`)
}

func TestUnusedTensors(t *testing.T) {
	// Real SD 2.x files hold 24 OpenCLIP blocks of which the model uses 23, an
	// unused text_projection, logit_scale; training files add EMA weights and
	// scheduler buffers. Add their like to the tiny file: they are reported,
	// and nothing else changes.
	dir := fixture.Path(t, "models/sd21-v")
	src := fixture.Path(t, "models/sd21-v.single.safetensors")
	f, err := safetensors.Open(src)
	require.NoError(t, err)
	var extra []safetensors.Tensor
	var wantUnused []string
	for _, n := range f.Names() {
		if rest, ok := strings.CutPrefix(n, prefixSD2Text+"transformer.resblocks.2."); ok {
			info, _ := f.Info(n)
			b, _ := f.Bytes(n)
			name := prefixSD2Text + "transformer.resblocks.3." + rest
			extra = append(extra, safetensors.Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: slices.Clone(b)})
			wantUnused = append(wantUnused, name)
		}
	}
	f.Close()
	for _, n := range []string{prefixSD2Text + "text_projection", prefixSD2Text + "logit_scale", "model_ema.decay", "alphas_cumprod", "first_stage_model.loss.logvar"} {
		extra = append(extra, safetensors.F32Tensor(n, []int{1}, []float32{1}))
		wantUnused = append(wantUnused, n)
	}
	sort.Strings(wantUnused)
	file := filepath.Join(t.TempDir(), "sd21-24.safetensors")
	rewrite(t, src, file, nil, nil, extra...)
	m := load(t, file, Options{Config: dir})
	require.Equal(t, wantUnused, m.Unused)
	require.Len(t, m.Notes, 1)
	require.Contains(t, m.Notes[0], fmt.Sprintf("%d tensors of the file are not used", len(wantUnused)))
	sameModel(t, load(t, dir, Options{}), m)
}

func TestProjectionLayout(t *testing.T) {
	// proj_in/proj_out stored as linear layers where the config (SD 1.x,
	// use_linear_projection false) wants 1x1 convolutions, and the reverse:
	// reshaped to the config's form.
	dir := fixture.Path(t, "models/sd15")
	file := filepath.Join(t.TempDir(), "sd15-linear.safetensors")
	rewrite(t, fixture.Path(t, "models/sd15.single.safetensors"), file, nil, func(n string, s []int) []int {
		if strings.HasSuffix(n, ".proj_in.weight") || strings.HasSuffix(n, ".proj_out.weight") {
			if strings.HasPrefix(n, prefixUNet) {
				require.Len(t, s, 4)
				return s[:2]
			}
		}
		return s
	})
	sameModel(t, load(t, dir, Options{}), load(t, file, Options{Config: dir}))

	xdir := fixture.Path(t, "models/sd21-v")
	xfile := filepath.Join(t.TempDir(), "sd21-conv.safetensors")
	rewrite(t, fixture.Path(t, "models/sd21-v.single.safetensors"), xfile, nil, func(n string, s []int) []int {
		if strings.HasPrefix(n, prefixUNet) && (strings.HasSuffix(n, ".proj_in.weight") || strings.HasSuffix(n, ".proj_out.weight")) {
			require.Len(t, s, 2)
			return append(slices.Clone(s), 1, 1)
		}
		return s
	})
	sameModel(t, load(t, xdir, Options{}), load(t, xfile, Options{Config: xdir}))
}

func TestCheckpointFiles(t *testing.T) {
	for _, name := range []string{"sd15", "sd21-v", "sdxl"} {
		dir := fixture.Path(t, "models/"+name)
		ckpt := filepath.Join(t.TempDir(), name+".ckpt")
		torchSave(t, fixture.Path(t, "models/"+name+".single.safetensors"), ckpt, map[string]int{"global_step": 123, "epoch": 4})
		got := load(t, ckpt, Options{Config: dir})
		require.Equal(t, SingleFile, got.Layout)
		require.Empty(t, got.Unused)
		sameModel(t, load(t, dir, Options{}), got)
	}
	// Not a torch.save file: the pickle reader's error names it.
	bad := filepath.Join(t.TempDir(), "sd15.ckpt")
	b, err := os.ReadFile(fixture.Path(t, "models/sd15.single.safetensors"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, b, 0o644))
	_, err = Load(bad, Options{Config: fixture.Path(t, "models/sd15")})
	require.ErrorContains(t, err, bad)
}

func TestDefaultPrediction(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base.ckpt")
	v := filepath.Join(t.TempDir(), "v.ckpt")
	torchSave(t, fixture.Path(t, "models/sd21-v.single.safetensors"), base, map[string]int{"global_step": 875000})
	torchSave(t, fixture.Path(t, "models/sd21-v.single.safetensors"), v, map[string]int{"global_step": 110000})
	for _, tc := range []struct {
		file string
		f    Family
		in   bool
		want string
	}{
		{base, SD2, false, Epsilon}, // SD 2.0 512-base, as diffusers tells it
		{v, SD2, false, VPrediction},
		{v, SD2, true, Epsilon},
		{v, SD1, false, Epsilon},
		{v, SDXL, false, Epsilon},
	} {
		src, err := OpenPickle(tc.file)
		require.NoError(t, err)
		require.Equal(t, tc.want, defaultPrediction(src, tc.f, tc.in), "%s %s", tc.file, tc.f)
		src.Close()
	}
	st, err := weights.OpenSafetensors(fixture.Path(t, "models/sd21-v.single.safetensors"))
	require.NoError(t, err)
	defer st.Close()
	require.Equal(t, VPrediction, defaultPrediction(st, SD2, false))
	// Through Load: the tiny file does not fit the standard architecture, and
	// the error says which one was chosen.
	_, err = Load(base, Options{})
	require.ErrorContains(t, err, base+`: tensor "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_bias": fused attention projection of shape [96]; want [3 x 1024, ...]`)
	require.ErrorContains(t, err, "standard SD 2.x architecture")
}

func TestPickleHook(t *testing.T) {
	dir := fixture.Path(t, "models/sd15")
	want := load(t, dir, Options{})
	// Options.OpenPickle replaces the reader: here one that reads safetensors
	// bytes under a .ckpt name.
	ckpt := filepath.Join(t.TempDir(), "sd15.ckpt")
	b, err := os.ReadFile(fixture.Path(t, "models/sd15.single.safetensors"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(ckpt, b, 0o644))
	var opened []string
	hook := func(p string) (weights.Source, error) {
		opened = append(opened, filepath.Base(p))
		return weights.OpenSafetensors(p)
	}
	got := load(t, ckpt, Options{Config: dir, OpenPickle: hook})
	require.Equal(t, []string{"sd15.ckpt"}, opened)
	sameModel(t, want, got)

	// A folder with .bin weights: used when no safetensors file is there.
	fdir := copyTree(t, dir)
	torchSave(t, filepath.Join(fdir, "vae", "diffusion_pytorch_model.safetensors"), filepath.Join(fdir, "vae", "diffusion_pytorch_model.bin"), nil)
	torchSave(t, filepath.Join(fdir, "text_encoder", "model.safetensors"), filepath.Join(fdir, "text_encoder", "pytorch_model.bin"), nil)
	require.NoError(t, os.Remove(filepath.Join(fdir, "vae", "diffusion_pytorch_model.safetensors")))
	require.NoError(t, os.Remove(filepath.Join(fdir, "text_encoder", "model.safetensors")))
	got = load(t, fdir, Options{})
	require.Equal(t, []string{filepath.Join(fdir, "vae", "diffusion_pytorch_model.bin")}, got.Parts()[1].Files)
	sameModel(t, want, got)

	// The hook is used for them too.
	opened = nil
	hdir := copyTree(t, dir)
	require.NoError(t, os.Rename(filepath.Join(hdir, "vae", "diffusion_pytorch_model.safetensors"), filepath.Join(hdir, "vae", "diffusion_pytorch_model.bin")))
	got = load(t, hdir, Options{OpenPickle: hook})
	require.Equal(t, []string{"diffusion_pytorch_model.bin"}, opened)
	sameModel(t, want, got)
}

func TestPredictionType(t *testing.T) {
	dir := fixture.Path(t, "models/sd21-v")
	m := load(t, fixture.Path(t, "models/sd21-v.single.safetensors"), Options{Config: dir, PredictionType: Epsilon})
	require.Equal(t, Epsilon, m.PredictionType)
	var sc map[string]any
	require.NoError(t, json.Unmarshal(m.SchedulerConfig, &sc))
	require.Equal(t, "epsilon", sc["prediction_type"])
	require.Equal(t, "DDIMScheduler", sc["_class_name"], "the rest of the config is kept")
	require.Equal(t, 0.00085, sc["beta_start"])
	require.Len(t, m.Notes, 1)
	require.Contains(t, m.Notes[0], "prediction type epsilon as asked (the scheduler config says v_prediction)")

	// Python's Infinity survives the rewrite as a string pyjson reads.
	b, err := setPredictionType([]byte(`{"prediction_type": "epsilon", "lambda_min_clipped": -Infinity}`), VPrediction)
	require.NoError(t, err)
	require.Contains(t, string(b), `"lambda_min_clipped": "-Infinity"`)
	require.Contains(t, string(b), `"prediction_type": "v_prediction"`)
}

func TestStandardArchitectures(t *testing.T) {
	for _, tc := range []struct {
		f          Family
		inpaint    bool
		pred       string
		unet       unet.Config
		vaeScale   float64
		texts      []string
		pipeline   string
		scheduler  string
		prediction string
		aesthetics bool
		forceZeros bool
		textHidden []int
		tokenizers []string
	}{
		{SD1, false, "", unet.SD15(), 0.18215, []string{"text_encoder"}, "StableDiffusionPipeline", "PNDMScheduler", Epsilon, false, false, []int{768}, []string{"tokenizer"}},
		{SD1, true, "", unet.SD15Inpaint(), 0.18215, []string{"text_encoder"}, "StableDiffusionInpaintPipeline", "PNDMScheduler", Epsilon, false, false, []int{768}, []string{"tokenizer"}},
		{SD2, false, "", unet.SD21(), 0.18215, []string{"text_encoder"}, "StableDiffusionPipeline", "DDIMScheduler", VPrediction, false, false, []int{1024}, []string{"tokenizer"}},
		{SD2, false, Epsilon, unet.SD21Base(), 0.18215, []string{"text_encoder"}, "StableDiffusionPipeline", "DDIMScheduler", Epsilon, false, false, []int{1024}, []string{"tokenizer"}},
		{SD2, true, "", unet.SD2Inpaint(), 0.18215, []string{"text_encoder"}, "StableDiffusionInpaintPipeline", "DDIMScheduler", Epsilon, false, false, []int{1024}, []string{"tokenizer"}},
		{SDXL, false, "", unet.SDXL(), 0.13025, []string{"text_encoder", "text_encoder_2"}, "StableDiffusionXLPipeline", "EulerDiscreteScheduler", Epsilon, false, true, []int{768, 1280}, []string{"tokenizer", "tokenizer_2"}},
		{SDXL, true, "", unet.SDXLInpaint(), 0.13025, []string{"text_encoder", "text_encoder_2"}, "StableDiffusionXLInpaintPipeline", "EulerDiscreteScheduler", Epsilon, false, true, []int{768, 1280}, []string{"tokenizer", "tokenizer_2"}},
		{SDXLRefiner, false, "", unet.SDXLRefiner(), 0.13025, []string{"text_encoder_2"}, "StableDiffusionXLImg2ImgPipeline", "EulerDiscreteScheduler", Epsilon, true, false, []int{1280}, []string{"tokenizer_2"}},
	} {
		a, err := standardArch(tc.f, tc.inpaint, tc.pred)
		require.NoError(t, err)
		label := fmt.Sprintf("%s inpaint=%v %q", tc.f, tc.inpaint, tc.pred)
		require.Equal(t, tc.unet, a.unet, label)
		require.Equal(t, tc.vaeScale, a.vae.ScalingFactor, label)
		require.Equal(t, tc.pipeline, a.index.ClassName, label)
		require.Equal(t, tc.scheduler, a.schedulerClass, label)
		require.Equal(t, tc.prediction, a.prediction, label)
		require.Equal(t, tc.aesthetics, a.index.RequiresAestheticsScore, label)
		require.Equal(t, tc.forceZeros, a.index.ForceZerosForEmptyPrompt, label)
		var names []string
		var hidden []int
		for _, te := range a.texts {
			names = append(names, te.Name)
			hidden = append(hidden, te.Config.HiddenSize)
			require.Empty(t, te.Tokenizer, "single files use the built-in tokenizer")
			require.True(t, a.index.Has(te.Name))
		}
		require.Equal(t, tc.texts, names, label)
		require.Equal(t, tc.textHidden, hidden, label)
		for _, tok := range tc.tokenizers {
			require.True(t, a.index.Has(tok), label)
		}
		var sc map[string]any
		require.NoError(t, json.Unmarshal(a.scheduler, &sc))
		require.Equal(t, tc.scheduler, sc["_class_name"])
		require.Equal(t, tc.prediction, sc["prediction_type"])
		require.Equal(t, 0.012, sc["beta_end"])
		// The UNet's cross-attention takes what the text encoders give.
		sum := 0
		for _, h := range hidden {
			sum += h
		}
		require.Equal(t, sum, a.unet.CrossAttentionDimAt(0), label)
	}
	_, err := standardArch(SDXLRefiner, true, "")
	require.ErrorContains(t, err, "Options.Config")
}

func TestStats(t *testing.T) {
	m := load(t, fixture.Path(t, "models/sd15"), Options{})
	f, err := safetensors.Open(filepath.Join(m.Path, "text_encoder", "model.safetensors"))
	require.NoError(t, err)
	defer f.Close()
	var params int64
	for _, n := range f.Names() {
		i, _ := f.Info(n)
		params += int64(i.Numel())
	}
	s := WeightStats(m.TextEncoders[0].Weights)
	require.Equal(t, 52, s.Tensors)
	require.Equal(t, params, s.Params)
	require.Equal(t, 4*params, s.Bytes, "F32")
	require.Equal(t, map[safetensors.DType]int64{safetensors.F32: params}, s.DTypes)
	u := WeightStats(m.UNetWeights)
	require.Equal(t, 2*u.Params, u.Bytes, "F16")
	require.Equal(t, []safetensors.DType{safetensors.F16}, u.MainDTypes())
}

func TestClose(t *testing.T) {
	m, err := Load(fixture.Path(t, "models/sdxl.single.safetensors"), Options{Config: fixture.Path(t, "models/sdxl")})
	require.NoError(t, err)
	src := m.UNetWeights
	// Closing one component leaves the others usable; the file is released
	// with the last.
	require.NoError(t, src.Close())
	_, err = src.Load("conv_in.weight", tensor.NewCPU())
	require.ErrorContains(t, err, "closed")
	v, err := m.VAEWeights.Load("decoder.conv_in.weight", tensor.NewCPU())
	require.NoError(t, err)
	v.Release()
	require.NoError(t, m.Close())
	require.NoError(t, m.Close())
	require.Nil(t, m.UNetWeights)
}

func TestModelIndex(t *testing.T) {
	x, err := ParseModelIndex("mi.json", []byte(`{"_class_name": "StableDiffusionXLImg2ImgPipeline", "_diffusers_version": "0.19.0",
		"text_encoder": [null, null], "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
		"requires_aesthetics_score": true, "force_zeros_for_empty_prompt": false, "image_encoder": [null, null]}`))
	require.NoError(t, err)
	require.Equal(t, []string{"text_encoder_2"}, x.Names())
	require.True(t, x.RequiresAestheticsScore)
	require.False(t, x.Has("text_encoder"))
	_, err = ParseModelIndex("mi.json", []byte(`{"_class_name": "X", "unet": ["diffusers", null]}`))
	require.ErrorContains(t, err, `mi.json: key "unet"`)
	_, err = ParseModelIndex("mi.json", []byte(`{"unet": ["diffusers", "UNet2DConditionModel"]}`))
	require.ErrorContains(t, err, "mi.json: no _class_name")
	_, err = ParseModelIndex("mi.json", []byte(`{"_class_name": "X", "requires_aesthetics_score": "yes"}`))
	require.ErrorContains(t, err, `key "requires_aesthetics_score"`)
}

func TestRefinerFolder(t *testing.T) {
	// An SDXL refiner laid out as a diffusers folder: only text_encoder_2.
	dir := copyTree(t, fixture.Path(t, "models/sdxl"))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "text_encoder")))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "tokenizer")))
	idx := filepath.Join(dir, "model_index.json")
	b, err := os.ReadFile(idx)
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	raw["_class_name"] = "StableDiffusionXLImg2ImgPipeline"
	raw["text_encoder"] = []any{nil, nil}
	raw["tokenizer"] = []any{nil, nil}
	raw["requires_aesthetics_score"] = true
	b, _ = json.Marshal(raw)
	require.NoError(t, os.WriteFile(idx, b, 0o644))
	m := load(t, dir, Options{})
	require.Equal(t, SDXLRefiner, m.Family)
	require.Len(t, m.TextEncoders, 1)
	require.Equal(t, "text_encoder_2", m.TextEncoders[0].Name)
	require.True(t, m.Index.RequiresAestheticsScore)
}
