package convert

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/tokenizer"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/vae"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

var (
	folders = []string{"sd15", "sd15-inpaint", "sd21-v", "sdxl", "sdxl-inpaint"}
	singles = []string{"sd15", "sd21-v", "sdxl"}
)

func load(t *testing.T, path string, opts model.Options) *model.Model {
	t.Helper()
	m, err := model.Load(path, opts)
	require.NoError(t, err, path)
	t.Cleanup(func() { m.Close() })
	return m
}

// rawTensor is a tensor as stored in a file.
type rawTensor struct {
	dtype safetensors.DType
	shape []int
	data  []byte
}

// readRaw reads every tensor of a safetensors file as stored.
func readRaw(t *testing.T, path string) map[string]rawTensor {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err, path)
	defer f.Close()
	out := map[string]rawTensor{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		b, err := f.Bytes(n)
		require.NoError(t, err)
		out[n] = rawTensor{info.DType, info.Shape, slices.Clone(b)}
	}
	return out
}

// sameRaw checks that two files hold the same tensors, byte for byte.
func sameRaw(t *testing.T, wantPath, gotPath string) {
	t.Helper()
	want, got := readRaw(t, wantPath), readRaw(t, gotPath)
	require.Equal(t, sortedKeys(want), sortedKeys(got), "%s vs %s: tensor names", wantPath, gotPath)
	for n, w := range want {
		g := got[n]
		require.Equal(t, w.dtype, g.dtype, "%s: dtype", n)
		require.Equal(t, w.shape, g.shape, "%s: shape", n)
		require.True(t, bytes.Equal(w.data, g.data), "%s: bytes differ", n)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// sameWeights checks that got holds exactly want's tensors: names, dtypes,
// shapes and bit-identical values.
func sameWeights(t *testing.T, label string, want, got weights.Source) {
	t.Helper()
	require.Equal(t, want.Names(), got.Names(), "%s: tensor names", label)
	cpu := tensor.NewCPU()
	for _, n := range want.Names() {
		wi, _ := want.Info(n)
		gi, _ := got.Info(n)
		require.Equal(t, wi, gi, "%s: %s", label, n)
		wt, err := want.Load(n, cpu)
		require.NoError(t, err)
		gt, err := got.Load(n, cpu)
		require.NoError(t, err, "%s: %s", label, n)
		require.Equal(t, wt.DType(), gt.DType())
		require.Equal(t, wt.Shape(), gt.Shape())
		require.Equal(t, bitsOf(t, wt), bitsOf(t, gt), "%s: %s: values", label, n)
		wt.Release()
		gt.Release()
	}
}

// bitsOf returns a tensor's elements as bit patterns (F32 as uint32, F16 and
// BF16 as uint16, widened).
func bitsOf(t *testing.T, x *tensor.Tensor) []uint32 {
	t.Helper()
	c, err := x.Contiguous()
	require.NoError(t, err)
	defer c.Release()
	out := make([]uint32, c.Numel())
	if c.DType() == tensor.F32 {
		v := make([]float32, c.Numel())
		require.NoError(t, c.Backend().Read(c.Storage(), c.Offset(), v))
		for i, f := range v {
			out[i] = math.Float32bits(f)
		}
		return out
	}
	v := make([]uint16, c.Numel())
	require.NoError(t, c.Backend().Read(c.Storage(), c.Offset(), v))
	for i, b := range v {
		out[i] = uint32(b)
	}
	return out
}

// sameModel checks that two loads hold the same architecture and weights.
func sameModel(t *testing.T, want, got *model.Model) {
	t.Helper()
	require.Equal(t, want.Family, got.Family)
	require.Equal(t, want.Inpaint, got.Inpaint)
	require.Equal(t, want.UNet, got.UNet)
	require.Equal(t, want.VAE, got.VAE)
	require.Equal(t, want.PredictionType, got.PredictionType)
	require.Equal(t, want.SchedulerClass, got.SchedulerClass)
	sameWeights(t, "unet", want.UNetWeights, got.UNetWeights)
	sameWeights(t, "vae", want.VAEWeights, got.VAEWeights)
	require.Len(t, got.TextEncoders, len(want.TextEncoders))
	for i, te := range want.TextEncoders {
		g := got.TextEncoders[i]
		require.Equal(t, te.Name, g.Name)
		require.Equal(t, te.Class, g.Class)
		require.Equal(t, te.Config, g.Config)
		sameWeights(t, te.Name, te.Weights, g.Weights)
	}
}

// weightFiles are the weight files of a diffusers folder, relative to it.
func weightFiles(m *model.Model) []string {
	files := []string{"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"}
	for _, te := range m.TextEncoders {
		files = append(files, te.Name+"/model.safetensors")
	}
	return files
}

// entries lists a folder's entries.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Each fixture single file, written as a diffusers folder, is the fixture's
// own folder: the same configs, tokenizers, index and tensors, byte for byte.
func TestSingleToDiffusers(t *testing.T) {
	for _, name := range singles {
		t.Run(name, func(t *testing.T) {
			dir := fixture.Path(t, "models/"+name)
			file := fixture.Path(t, "models/"+name+".single.safetensors")
			m := load(t, file, model.Options{Config: dir})
			out := filepath.Join(t.TempDir(), "out")
			res, err := ToDiffusers(context.Background(), m, out, Options{})
			require.NoError(t, err)
			require.Equal(t, out, res.Path)
			require.Zero(t, res.Converted)
			require.Empty(t, res.Notes)
			var want []string
			for _, f := range weightFiles(m) {
				want = append(want, filepath.Join(out, f))
			}
			require.Equal(t, want, res.Files)
			require.Equal(t, []string{"out"}, entries(t, filepath.Dir(out)), "no temporary left beside it")

			// The tensors: byte for byte the folder's files.
			total := 0
			for _, f := range weightFiles(m) {
				sameRaw(t, filepath.Join(dir, f), filepath.Join(out, f))
				total += len(readRaw(t, filepath.Join(dir, f)))
				mf, err := safetensors.Open(filepath.Join(out, f))
				require.NoError(t, err)
				require.Equal(t, "pt", mf.Metadata()["format"])
				mf.Close()
			}
			require.Equal(t, total, res.Tensors)

			// Loaded, it is the folder.
			got := load(t, out, model.Options{})
			folder := load(t, dir, model.Options{})
			sameModel(t, folder, got)
			require.Equal(t, folder.Index, got.Index)
			require.Equal(t, folder.SchedulerConfig, got.SchedulerConfig)

			// Its configs parse to the source's.
			u1, err := unet.LoadConfig(filepath.Join(dir, "unet", "config.json"))
			require.NoError(t, err)
			u2, err := unet.LoadConfig(filepath.Join(out, "unet", "config.json"))
			require.NoError(t, err)
			require.Equal(t, u1, u2)
			v1, err := vae.LoadConfig(filepath.Join(dir, "vae", "config.json"))
			require.NoError(t, err)
			v2, err := vae.LoadConfig(filepath.Join(out, "vae", "config.json"))
			require.NoError(t, err)
			require.Equal(t, v1, v2)
			for _, te := range m.TextEncoders {
				c1, err := clip.LoadConfig(filepath.Join(dir, te.Name, "config.json"))
				require.NoError(t, err)
				c2, err := clip.LoadConfig(filepath.Join(out, te.Name, "config.json"))
				require.NoError(t, err)
				require.Equal(t, c1, c2)
				// The tokenizer folder is the source's, file for file.
				tok := tokenizerOf(te.Name)
				require.Equal(t, entries(t, filepath.Join(dir, tok)), entries(t, filepath.Join(out, tok)))
				for _, f := range entries(t, filepath.Join(dir, tok)) {
					a, err := os.ReadFile(filepath.Join(dir, tok, f))
					require.NoError(t, err)
					b, err := os.ReadFile(filepath.Join(out, tok, f))
					require.NoError(t, err)
					require.Equal(t, a, b, "%s/%s", tok, f)
				}
			}
			// The folder's own top-level entries, nothing more.
			require.Equal(t, entries(t, dir), entries(t, out))
			st, err := os.Stat(out)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o755), st.Mode().Perm())
		})
	}
}

// Each fixture folder, written as a single file, loads back as the folder;
// for those with a fixture single file, it is that file: the same keys and
// the same bytes, the OpenCLIP in_proj fusion and the VAE's 1x1 convolutions
// included.
func TestFolderToSingleFile(t *testing.T) {
	for _, name := range folders {
		t.Run(name, func(t *testing.T) {
			dir := fixture.Path(t, "models/"+name)
			m := load(t, dir, model.Options{})
			out := filepath.Join(t.TempDir(), name+".safetensors")
			res, err := ToSingleFile(context.Background(), m, out, Options{})
			require.NoError(t, err)
			require.Equal(t, []string{out}, res.Files)
			require.Zero(t, res.Converted)
			require.Equal(t, []string{name + ".safetensors"}, entries(t, filepath.Dir(out)))
			st, err := os.Stat(out)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o644), st.Mode().Perm())

			got := load(t, out, model.Options{Config: dir})
			require.Empty(t, got.Unused, "every tensor written is one the loader uses")
			sameModel(t, m, got)

			if slices.Contains(singles, name) {
				ref := fixture.Path(t, "models/"+name+".single.safetensors")
				sameRaw(t, ref, out)
				require.Equal(t, len(readRaw(t, ref)), res.Tensors)
			}
		})
	}
}

// single -> folder -> single gives the original file's tensors back.
func TestSingleRoundTrip(t *testing.T) {
	name := "sdxl"
	dir := fixture.Path(t, "models/"+name)
	file := fixture.Path(t, "models/"+name+".single.safetensors")
	tmp := t.TempDir()
	m := load(t, file, model.Options{Config: dir})
	_, err := ToDiffusers(context.Background(), m, filepath.Join(tmp, "folder"), Options{})
	require.NoError(t, err)
	f := load(t, filepath.Join(tmp, "folder"), model.Options{})
	_, err = ToSingleFile(context.Background(), f, filepath.Join(tmp, "back.safetensors"), Options{})
	require.NoError(t, err)
	sameRaw(t, file, filepath.Join(tmp, "back.safetensors"))
	// And a single file written straight from a single file.
	_, err = ToSingleFile(context.Background(), m, filepath.Join(tmp, "again.safetensors"), Options{})
	require.NoError(t, err)
	sameRaw(t, file, filepath.Join(tmp, "again.safetensors"))
}

// Without a source config folder (a single file with the standard configs),
// the configs, index and tokenizers are made from the model's parsed configs
// and the built-in vocabulary, and the folder still loads as the same model.
func TestDiffusersWithoutSourceConfigs(t *testing.T) {
	for _, name := range singles {
		t.Run(name, func(t *testing.T) {
			dir := fixture.Path(t, "models/"+name)
			file := fixture.Path(t, "models/"+name+".single.safetensors")
			m := load(t, file, model.Options{Config: dir})
			// As a single file loaded with the standard configs is presented.
			m.ConfigDir = ""
			for i := range m.TextEncoders {
				m.TextEncoders[i].Tokenizer = ""
			}
			out := filepath.Join(t.TempDir(), "out")
			res, err := ToDiffusers(context.Background(), m, out, Options{})
			require.NoError(t, err)
			require.Len(t, res.Notes, len(m.TextEncoders))
			require.Contains(t, res.Notes[0], "text_encoder: the built-in CLIP vocabulary is written as tokenizer")
			got := load(t, out, model.Options{})
			sameModel(t, m, got)
			require.Equal(t, m.Index, got.Index)
			require.Equal(t, m.SchedulerConfig, got.SchedulerConfig)

			idx, err := os.ReadFile(filepath.Join(out, "model_index.json"))
			require.NoError(t, err)
			require.Contains(t, string(idx), `"feature_extractor": [`)
			for i, te := range m.TextEncoders {
				cfg, err := os.ReadFile(filepath.Join(out, te.Name, "config.json"))
				require.NoError(t, err)
				require.Contains(t, string(cfg), `"model_type": "clip_text_model"`)
				dt := "float16"
				if name == "sd15" {
					dt = "float32"
				}
				require.Contains(t, string(cfg), `"torch_dtype": "`+dt+`"`)

				tok, err := tokenizer.Load(filepath.Join(out, tokenizerOf(te.Name)))
				require.NoError(t, err)
				require.Equal(t, 49408, tok.VocabSize(), "the built-in vocabulary")
				wantPad := 49407 // <|endoftext|>
				if name == "sd21-v" || i == 1 {
					wantPad = 0 // "!" for OpenCLIP
				}
				require.Equal(t, wantPad, tok.Pad(), te.Name)
			}
		})
	}
}

// The folder's components not written (a safety checker) become [null, null]
// in model_index.json, which keeps the source's other pipeline options.
func TestModelIndexDropsUnwrittenComponents(t *testing.T) {
	src := t.TempDir()
	dir := fixture.Path(t, "models/sd15")
	require.NoError(t, os.CopyFS(src, os.DirFS(dir)))
	idx, err := os.ReadFile(filepath.Join(src, "model_index.json"))
	require.NoError(t, err)
	idx = bytes.Replace(idx, []byte(`"safety_checker": [
    null,
    null
  ]`), []byte(`"safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"], "some_option": 3`), 1)
	require.NoError(t, os.WriteFile(filepath.Join(src, "model_index.json"), idx, 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(src, "safety_checker"), 0o755))
	m := load(t, src, model.Options{})
	require.True(t, m.Index.Has("safety_checker"))
	out := filepath.Join(t.TempDir(), "out")
	_, err = ToDiffusers(context.Background(), m, out, Options{})
	require.NoError(t, err)
	got := load(t, out, model.Options{})
	require.False(t, got.Index.Has("safety_checker"))
	b, err := os.ReadFile(filepath.Join(out, "model_index.json"))
	require.NoError(t, err)
	require.Contains(t, string(b), `"some_option": 3`)
	require.NotContains(t, string(b), "StableDiffusionSafetyChecker")
	require.NotContains(t, entries(t, out), "safety_checker")
}

// --dtype f16 on sd15, whose text encoder is F32: every float tensor comes out
// F16, rounded as package tensor rounds; the folder loads and runs.
func TestToF16(t *testing.T) {
	dir := fixture.Path(t, "models/sd15")
	m := load(t, dir, model.Options{})
	out := filepath.Join(t.TempDir(), "f16")
	res, err := ToDiffusers(context.Background(), m, out, Options{DType: F16})
	require.NoError(t, err)
	require.Equal(t, 52, res.Converted, "the text encoder's F32 tensors")
	require.Len(t, res.DTypes, 1)
	require.Contains(t, res.DTypes, safetensors.F16)

	got := load(t, out, model.Options{})
	cpu := tensor.NewCPU()
	f32 := 0
	for i, p := range m.Parts() {
		gp := got.Parts()[i]
		require.Equal(t, p.Weights.Names(), gp.Weights.Names())
		for _, n := range p.Weights.Names() {
			wi, _ := p.Weights.Info(n)
			gi, _ := gp.Weights.Info(n)
			require.Equal(t, safetensors.F16, gi.DType, "%s %s", p.Name, n)
			require.Equal(t, wi.Shape, gi.Shape)
			src, err := p.Weights.Load(n, cpu)
			require.NoError(t, err)
			want, err := src.To(tensor.F16)
			require.NoError(t, err)
			gt, err := gp.Weights.Load(n, cpu)
			require.NoError(t, err)
			require.Equal(t, bitsOf(t, want), bitsOf(t, gt), "%s %s", p.Name, n)
			if wi.DType == safetensors.F32 {
				f32++
				// Rounding happened (not truncation, not a copy of F32 bits).
				require.Equal(t, tensor.F32, src.DType())
			}
			src.Release()
			want.Release()
			gt.Release()
		}
	}
	require.Equal(t, 52, f32)
	cfg, err := os.ReadFile(filepath.Join(out, "text_encoder", "config.json"))
	require.NoError(t, err)
	require.Contains(t, string(cfg), `"dtype": "float16"`, "transformers 5's key, updated")

	// It runs: the text encoder, then the UNet on its output.
	te := got.TextEncoders[0]
	tm, err := clip.Load(weights.Params(te.Weights, cpu), te.Config)
	require.NoError(t, err)
	ids := make([]int, 77)
	ids[0], ids[1], ids[2] = 2012, 320, 2013
	for i := 3; i < len(ids); i++ {
		ids[i] = 2013
	}
	enc, err := tm.Forward([][]int{ids})
	require.NoError(t, err)
	defer enc.Release()
	requireFinite(t, "text encoder", enc.LastHiddenState)

	u, err := unet.Load(weights.Params(got.UNetWeights, cpu), got.UNet, unet.Options{})
	require.NoError(t, err)
	sample := make([]float32, 4*8*8)
	for i := range sample {
		sample[i] = float32(math.Sin(float64(i)))
	}
	x, err := tensor.FromFloat32(cpu, sample, 1, 4, 8, 8)
	require.NoError(t, err)
	y, err := u.Forward(unet.Input{Sample: x, Timestep: []float32{500}, Context: enc.LastHiddenState}, nil)
	require.NoError(t, err)
	require.Equal(t, []int{1, 4, 8, 8}, y.Shape())
	requireFinite(t, "unet", y)
}

func requireFinite(t *testing.T, what string, x *tensor.Tensor) {
	t.Helper()
	v, err := x.Float32s()
	require.NoError(t, err)
	require.NotEmpty(t, v)
	nonzero := false
	for i, f := range v {
		require.False(t, math.IsNaN(float64(f)) || math.IsInf(float64(f), 0), "%s: element %d is %v", what, i, f)
		nonzero = nonzero || f != 0
	}
	require.True(t, nonzero, "%s: all zeros", what)
}

// BF16 to F16 (sd21-v's VAE) and F16 to F32 (exact), in a single file.
func TestOtherDTypes(t *testing.T) {
	dir := fixture.Path(t, "models/sd21-v")
	m := load(t, dir, model.Options{})
	tmp := t.TempDir()
	cpu := tensor.NewCPU()
	for _, tc := range []struct {
		dtype DType
		want  tensor.DType
	}{{F16, tensor.F16}, {F32, tensor.F32}, {BF16, tensor.BF16}} {
		out := filepath.Join(tmp, string(tc.dtype)+".safetensors")
		res, err := ToSingleFile(context.Background(), m, out, Options{DType: tc.dtype})
		require.NoError(t, err)
		require.Positive(t, res.Converted)
		got := load(t, out, model.Options{Config: dir})
		for i, p := range m.Parts() {
			gp := got.Parts()[i]
			require.Equal(t, p.Weights.Names(), gp.Weights.Names())
			for _, n := range p.Weights.Names() {
				src, err := p.Weights.Load(n, cpu)
				require.NoError(t, err)
				want, err := src.To(tc.want)
				require.NoError(t, err)
				gt, err := gp.Weights.Load(n, cpu)
				require.NoError(t, err)
				require.Equal(t, tc.want, gt.DType(), "%s %s", p.Name, n)
				require.Equal(t, bitsOf(t, want), bitsOf(t, gt), "%s %s", p.Name, n)
				if tc.dtype == F32 {
					// Widening is exact.
					a, _ := src.Float32s()
					b, _ := gt.Float32s()
					require.Equal(t, a, b)
				}
				src.Release()
				want.Release()
				gt.Release()
			}
		}
	}
}

func TestParseDType(t *testing.T) {
	for in, want := range map[string]DType{"": Keep, "keep": Keep, "f16": F16, "FP16": F16, "float16": F16, "bf16": BF16, "f32": F32, "float32": F32} {
		got, err := ParseDType(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := ParseDType("int8")
	require.ErrorContains(t, err, `unknown dtype "int8" (want keep, f16, bf16 or f32)`)
}

func TestErrors(t *testing.T) {
	dir := fixture.Path(t, "models/sd15")
	m := load(t, dir, model.Options{})
	tmp := t.TempDir()

	// An unknown dtype: nothing written.
	_, err := ToDiffusers(context.Background(), m, filepath.Join(tmp, "x"), Options{DType: "int4"})
	require.ErrorContains(t, err, `unknown dtype "int4"`)
	_, err = ToSingleFile(context.Background(), m, filepath.Join(tmp, "x.safetensors"), Options{DType: "f8"})
	require.ErrorContains(t, err, `unknown dtype "f8"`)
	require.Empty(t, entries(t, tmp))

	// A single file must be .safetensors.
	_, err = ToSingleFile(context.Background(), m, filepath.Join(tmp, "x.ckpt"), Options{})
	require.ErrorContains(t, err, "want a name ending in .safetensors")

	// An unwritable destination: its folder is a file, or missing.
	file := filepath.Join(tmp, "file")
	require.NoError(t, os.WriteFile(file, []byte("keep me"), 0o644))
	for _, dst := range []string{filepath.Join(file, "out"), filepath.Join(tmp, "missing", "out")} {
		_, err = ToDiffusers(context.Background(), m, dst, Options{})
		require.Error(t, err)
		require.Contains(t, err.Error(), dst)
		_, err = ToSingleFile(context.Background(), m, dst+".safetensors", Options{})
		require.Error(t, err)
		require.Contains(t, err.Error(), dst+".safetensors")
	}
	require.Equal(t, []string{"file"}, entries(t, tmp))

	// The destination exists: refused without Force, and left as it was.
	existing := filepath.Join(tmp, "existing")
	require.NoError(t, os.Mkdir(existing, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(existing, "notes.txt"), []byte("mine"), 0o644))
	_, err = ToDiffusers(context.Background(), m, existing, Options{})
	require.ErrorIs(t, err, ErrExists)
	require.ErrorContains(t, err, existing)
	_, err = ToSingleFile(context.Background(), m, file+".safetensors", Options{})
	require.NoError(t, err)
	_, err = ToSingleFile(context.Background(), m, file+".safetensors", Options{})
	require.ErrorIs(t, err, ErrExists)
	// Force never replaces what is not of the kind written.
	_, err = ToDiffusers(context.Background(), m, existing, Options{Force: true})
	require.ErrorContains(t, err, "not a diffusers folder")
	_, err = ToDiffusers(context.Background(), m, file, Options{Force: true})
	require.ErrorContains(t, err, "not a folder")
	_, err = ToSingleFile(context.Background(), m, existing, Options{Force: true})
	require.ErrorContains(t, err, ".safetensors")
	dirNamed := filepath.Join(tmp, "dir.safetensors")
	require.NoError(t, os.Mkdir(dirNamed, 0o755))
	_, err = ToSingleFile(context.Background(), m, dirNamed, Options{Force: true})
	require.ErrorContains(t, err, "is not a file")
	b, err := os.ReadFile(filepath.Join(existing, "notes.txt"))
	require.NoError(t, err)
	require.Equal(t, "mine", string(b))
	b, err = os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, "keep me", string(b))

	// The destination is the source, or holds it.
	_, err = ToDiffusers(context.Background(), m, dir, Options{Force: true})
	require.ErrorContains(t, err, "holds the model's source")
	_, err = ToDiffusers(context.Background(), m, filepath.Dir(dir), Options{Force: true})
	require.ErrorContains(t, err, "holds the model's source")
	single := load(t, fixture.Path(t, "models/sd15.single.safetensors"), model.Options{Config: dir})
	_, err = ToSingleFile(context.Background(), single, single.Path, Options{Force: true})
	require.ErrorContains(t, err, "holds the model's source")

	// A closed model.
	closed := load(t, dir, model.Options{})
	require.NoError(t, closed.Close())
	_, err = ToDiffusers(context.Background(), closed, filepath.Join(tmp, "closed"), Options{})
	require.ErrorContains(t, err, "closed")

	require.ElementsMatch(t, []string{"file", "file.safetensors", "existing", "dir.safetensors"}, entries(t, tmp))
}

// Force replaces a diffusers folder or a file, only once the new one is
// complete.
func TestForce(t *testing.T) {
	tmp := t.TempDir()
	sd15 := load(t, fixture.Path(t, "models/sd15"), model.Options{})
	sdxl := load(t, fixture.Path(t, "models/sdxl"), model.Options{})
	out := filepath.Join(tmp, "out")
	_, err := ToDiffusers(context.Background(), sdxl, out, Options{})
	require.NoError(t, err)
	_, err = ToDiffusers(context.Background(), sd15, out, Options{Force: true})
	require.NoError(t, err)
	got := load(t, out, model.Options{})
	require.Equal(t, model.SD1, got.Family)
	require.NotContains(t, entries(t, out), "text_encoder_2", "the old folder's files are gone")
	require.Equal(t, []string{"out"}, entries(t, tmp))

	// A destination written with a final separator is the folder itself.
	slash := filepath.Join(tmp, "slash") + string(filepath.Separator)
	res, err := ToDiffusers(context.Background(), sd15, slash, Options{})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(tmp, "slash"), res.Path)
	load(t, slash, model.Options{})
	require.NoError(t, os.RemoveAll(slash))

	// An empty folder may be replaced too.
	empty := filepath.Join(tmp, "empty")
	require.NoError(t, os.Mkdir(empty, 0o755))
	_, err = ToDiffusers(context.Background(), sd15, empty, Options{Force: true})
	require.NoError(t, err)

	file := filepath.Join(tmp, "m.safetensors")
	_, err = ToSingleFile(context.Background(), sdxl, file, Options{})
	require.NoError(t, err)
	_, err = ToSingleFile(context.Background(), sd15, file, Options{Force: true})
	require.NoError(t, err)
	sameRaw(t, fixture.Path(t, "models/sd15.single.safetensors"), file)
	require.ElementsMatch(t, []string{"out", "empty", "m.safetensors"}, entries(t, tmp))
}

// A cancelled conversion leaves nothing behind, and a replaced destination
// untouched.
func TestCancel(t *testing.T) {
	m := load(t, fixture.Path(t, "models/sdxl"), model.Options{})
	for _, single := range []bool{false, true} {
		tmp := t.TempDir()
		dst := filepath.Join(tmp, "out")
		if single {
			dst += ".safetensors"
		}
		ctx, cancel := context.WithCancel(context.Background())
		var seen []int
		total := 1061 // the folder's tensors
		if single {
			total = 1049 // q, k and v fused: 2 x 3 x 2 fewer
		}
		opts := Options{Progress: func(done, n int) {
			seen = append(seen, done)
			require.Equal(t, total, n)
			if done == 500 {
				cancel()
			}
		}}
		var err error
		if single {
			_, err = ToSingleFile(ctx, m, dst, opts)
		} else {
			_, err = ToDiffusers(ctx, m, dst, opts)
		}
		require.ErrorIs(t, err, context.Canceled)
		require.Len(t, seen, 500)
		require.Empty(t, entries(t, tmp), "nothing half-written, no temporary left")

		// With Force over an existing output: the old one stays.
		if single {
			_, err = ToSingleFile(context.Background(), m, dst, Options{})
		} else {
			_, err = ToDiffusers(context.Background(), m, dst, Options{})
		}
		require.NoError(t, err)
		var before map[string]rawTensor
		if single {
			before = readRaw(t, dst)
		} else {
			before = readRaw(t, filepath.Join(dst, "unet", "diffusion_pytorch_model.safetensors"))
		}
		ctx, cancel = context.WithCancel(context.Background())
		cancel()
		opts = Options{Force: true, DType: F32}
		if single {
			_, err = ToSingleFile(ctx, m, dst, opts)
		} else {
			_, err = ToDiffusers(ctx, m, dst, opts)
		}
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, []string{filepath.Base(dst)}, entries(t, tmp))
		var after map[string]rawTensor
		if single {
			after = readRaw(t, dst)
		} else {
			after = readRaw(t, filepath.Join(dst, "unet", "diffusion_pytorch_model.safetensors"))
		}
		require.Equal(t, before, after)
	}
}

// memSource is an in-memory weights.Source for the writer's own tests.
type memSource struct {
	tensors map[string]rawTensor
}

func (s *memSource) Names() []string { return sortedKeys(s.tensors) }
func (s *memSource) Info(name string) (weights.Info, bool) {
	r, ok := s.tensors[name]
	return weights.Info{DType: r.dtype, Shape: r.shape}, ok
}
func (s *memSource) Load(name string, b tensor.Backend) (*tensor.Tensor, error) {
	r, ok := s.tensors[name]
	if !ok {
		return nil, errors.New("no such tensor")
	}
	return weights.FromBytes(b, r.dtype, r.shape, r.data)
}
func (s *memSource) Close() error { return nil }

func f32Bytes(v ...float32) []byte {
	return safetensors.F32Tensor("", nil, v).Data
}

func TestWriterValues(t *testing.T) {
	src := &memSource{tensors: map[string]rawTensor{
		"big":  {safetensors.F32, []int{3}, f32Bytes(1, 70000, -2)},
		"inf":  {safetensors.F32, []int{2}, f32Bytes(float32(math.Inf(1)), 65519)},
		"huge": {safetensors.F32, []int{1}, f32Bytes(math.MaxFloat32)},
		"ids":  {safetensors.I64, []int{3}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 76, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		"far":  {safetensors.I64, []int{1}, []byte{1, 0, 0, 2, 0, 0, 0, 0}},
		"f64":  {safetensors.F64, []int{1}, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		"u16":  {safetensors.U16, []int{1}, []byte{1, 0}},
		"mat":  {safetensors.F16, []int{2, 3}, safetensors.U16Tensor("", safetensors.F16, nil, []uint16{0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600}).Data},
	}}
	res := &Result{}
	produce := func(dt DType, r recipe) ([]byte, error) {
		w := newWriter(context.Background(), dt, Options{}, res)
		infos, err := w.layout([]recipe{r})
		if err != nil {
			return nil, err
		}
		sw, err := safetensors.NewStreamWriter(&bytes.Buffer{}, infos, nil)
		require.NoError(t, err)
		info, _ := sw.Next()
		return w.produce(r, info)
	}
	rec := func(name string) recipe {
		r, err := identity(src, name)
		require.NoError(t, err)
		return r
	}

	// F32 beyond float16's range: refused, naming the tensor and the value.
	_, err := produce(F16, rec("big"))
	require.ErrorContains(t, err, `"big" holds 70000 (element 1), beyond the range of F16`)
	b, err := produce(BF16, rec("big"))
	require.NoError(t, err, "bfloat16 holds it")
	require.Len(t, b, 6)
	// An infinity stays one; 65519 rounds down to 65504.
	b, err = produce(F16, rec("inf"))
	require.NoError(t, err)
	require.Equal(t, []byte{0x00, 0x7c, 0xff, 0x7b}, b)
	_, err = produce(BF16, rec("huge"))
	require.ErrorContains(t, err, "beyond the range of BF16")

	// Integers keep their dtype and values whatever the float dtype.
	b, err = produce(F16, rec("ids"))
	require.NoError(t, err)
	require.Equal(t, src.tensors["ids"].data, b)
	_, err = produce(Keep, rec("far"))
	require.ErrorContains(t, err, "cannot be written back exactly")

	// F64 is written as F32 when kept.
	r := rec("f64")
	w := newWriter(context.Background(), Keep, Options{}, res)
	infos, err := w.layout([]recipe{r})
	require.NoError(t, err)
	require.Equal(t, safetensors.F32, infos[0].DType)
	b, err = produce(Keep, r)
	require.NoError(t, err)
	require.Equal(t, f32Bytes(1), b)

	// Unsigned 16-bit tensors cannot be read.
	_, err = produce(Keep, rec("u16"))
	require.ErrorContains(t, err, "dtype U16 cannot be converted")

	// A transposed matrix, and fused rows.
	r = rec("mat")
	r.transpose, r.shape = true, []int{3, 2}
	b, err = produce(Keep, r)
	require.NoError(t, err)
	require.Equal(t, safetensors.U16Tensor("", safetensors.F16, nil, []uint16{0x3c00, 0x4400, 0x4000, 0x4500, 0x4200, 0x4600}).Data, b)
	r = rec("mat")
	r.from, r.shape = []string{"mat", "mat", "mat"}, []int{6, 3}
	b, err = produce(F32, r)
	require.NoError(t, err)
	one := f32Bytes(1, 2, 3, 4, 5, 6)
	require.Equal(t, slices.Concat(one, one, one), b)
}

// The output never appears under DST with a temporary name pattern other
// than DST.tmp-*.
func TestTempName(t *testing.T) {
	require.True(t, strings.HasPrefix(tempName("/a/b/model"), "model.tmp-"))
}

// writeWith writes a copy of a safetensors file with more tensors.
func writeWith(t *testing.T, src, dst string, more ...safetensors.Tensor) {
	t.Helper()
	var ts []safetensors.Tensor
	for n, r := range readRaw(t, src) {
		ts = append(ts, safetensors.Tensor{Name: n, DType: r.dtype, Shape: r.shape, Data: r.data})
	}
	require.NoError(t, safetensors.WriteFile(dst, append(ts, more...), nil))
}

func positionIDs(name string) safetensors.Tensor {
	b := make([]byte, 0, 8*77)
	for i := range 77 {
		b = append(b, byte(i), 0, 0, 0, 0, 0, 0, 0)
	}
	return safetensors.Tensor{Name: name, DType: safetensors.I64, Shape: []int{1, 77}, Data: b}
}

// Tensors of a single file that the model does not use are left out, with a
// note; an integer buffer a folder holds is copied exactly, and left out of
// the OpenCLIP layout, which has no place for it.
func TestUnusedAndIntegerTensors(t *testing.T) {
	tmp := t.TempDir()
	dir := fixture.Path(t, "models/sd15")
	file := filepath.Join(tmp, "extra.safetensors")
	writeWith(t, fixture.Path(t, "models/sd15.single.safetensors"), file,
		positionIDs("cond_stage_model.transformer.text_model.embeddings.position_ids"),
		safetensors.Tensor{Name: "model_ema.num_updates", DType: safetensors.I32, Shape: []int{}, Data: []byte{1, 2, 0, 0}})
	m := load(t, file, model.Options{Config: dir})
	require.Len(t, m.Unused, 2)
	out := filepath.Join(tmp, "out.safetensors")
	res, err := ToSingleFile(context.Background(), m, out, Options{})
	require.NoError(t, err)
	require.Equal(t, []string{`2 tensors of the source that the model does not use are not written, from "cond_stage_model.transformer.text_model.embeddings.position_ids"`}, res.Notes)
	sameRaw(t, fixture.Path(t, "models/sd15.single.safetensors"), out)

	// A folder whose OpenCLIP encoder holds transformers' position_ids.
	xl := filepath.Join(tmp, "sdxl")
	require.NoError(t, os.CopyFS(xl, os.DirFS(fixture.Path(t, "models/sdxl"))))
	te2 := filepath.Join(xl, "text_encoder_2", "model.safetensors")
	require.NoError(t, os.Chmod(te2, 0o644))
	writeWith(t, fixture.Path(t, "models/sdxl/text_encoder_2/model.safetensors"), te2, positionIDs("text_model.embeddings.position_ids"))
	m = load(t, xl, model.Options{})
	res, err = ToSingleFile(context.Background(), m, filepath.Join(tmp, "xl.safetensors"), Options{DType: F16})
	require.NoError(t, err)
	require.Equal(t, []string{`text_encoder_2: "text_model.embeddings.position_ids" has no place in the OpenCLIP layout and is left out`}, res.Notes)
	sameRaw(t, fixture.Path(t, "models/sdxl.single.safetensors"), filepath.Join(tmp, "xl.safetensors"))
	// As a folder, with every float converted, the integers stay as they were.
	res, err = ToDiffusers(context.Background(), m, filepath.Join(tmp, "xl-f32"), Options{DType: F32})
	require.NoError(t, err)
	got := readRaw(t, filepath.Join(tmp, "xl-f32", "text_encoder_2", "model.safetensors"))
	require.Equal(t, positionIDs("").Data, got["text_model.embeddings.position_ids"].data)
	require.Equal(t, safetensors.I64, got["text_model.embeddings.position_ids"].dtype)
	require.Equal(t, 1061, res.Converted, "every float tensor, not the integer one")
	require.Equal(t, int64(77), res.DTypes[safetensors.I64])
}
