package hub

import (
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/diffusion/hub/hubtest"
)

// selectFrom runs the selection over fixture files, loading from them.
func selectFrom(t *testing.T, files []hubtest.File, o Options) ([]string, []string, error) {
	t.Helper()
	var tree []treeEntry
	data := map[string][]byte{}
	for _, f := range files {
		tree = append(tree, treeEntry{Path: f.Path, Size: int64(len(f.Data)), BlobID: hubtest.GitBlobID(f.Data)})
		data[f.Path] = f.Data
	}
	var loaded []string
	load := func(ps []string) ([][]byte, error) {
		var out [][]byte
		for _, p := range ps {
			d, ok := data[p]
			if !ok {
				return nil, errors.New("no " + p)
			}
			loaded = append(loaded, p)
			out = append(out, d)
		}
		return out, nil
	}
	got, err := selectFiles("org/repo", tree, o, load, func(string, ...any) {})
	return got, loaded, err
}

func sorted(ps []string) []string {
	ps = slices.Clone(ps)
	slices.Sort(ps)
	return ps
}

func TestSelectPipeline(t *testing.T) {
	got, loaded, err := selectFrom(t, pipelineFiles(), Options{})
	require.NoError(t, err)
	require.Equal(t, sorted(pipelinePlain), got)
	require.Equal(t, []string{"model_index.json", "vae/diffusion_pytorch_model.safetensors.index.json"}, loaded)

	got, loaded, err = selectFrom(t, pipelineFiles(), Options{Variant: "fp16"})
	require.NoError(t, err)
	require.Equal(t, sorted(pipelineFP16), got)
	require.Equal(t, []string{"model_index.json", "vae/diffusion_pytorch_model.safetensors.index.fp16.json"}, loaded)

	// A variant no component has: the plain files everywhere.
	got, _, err = selectFrom(t, pipelineFiles(), Options{Variant: "bf16"})
	require.NoError(t, err)
	require.Equal(t, sorted(pipelinePlain), got)

	got, _, err = selectFrom(t, pipelineFiles(), Options{Exclude: []string{"tokenizer_2/", "*.index.json"}})
	require.NoError(t, err)
	want := slices.DeleteFunc(slices.Clone(pipelinePlain), func(p string) bool {
		return p == "tokenizer_2/merges.txt" || p == "tokenizer_2/vocab.json" || p == "vae/diffusion_pytorch_model.safetensors.index.json"
	})
	require.Equal(t, sorted(want), got)
}

func TestSelectIncludeAll(t *testing.T) {
	got, loaded, err := selectFrom(t, pipelineFiles(), Options{Include: []string{"*.ckpt", "unet/*.json"}})
	require.NoError(t, err)
	require.Equal(t, []string{"unet/config.json", "v1-5-pruned.ckpt"}, got)
	require.Empty(t, loaded, "Include needs no model_index.json")

	got, _, err = selectFrom(t, pipelineFiles(), Options{All: true, Exclude: []string{"*.bin", "*.msgpack"}})
	require.NoError(t, err)
	require.Contains(t, got, "README.md")
	require.Contains(t, got, "v1-5-pruned.ckpt")
	require.NotContains(t, got, "unet/diffusion_pytorch_model.bin")
	require.Len(t, got, len(pipelineFiles())-6) // 4 .bin, 2 .msgpack

	_, _, err = selectFrom(t, pipelineFiles(), Options{Include: []string{"*.gguf"}})
	require.ErrorContains(t, err, "no file of org/repo matches *.gguf")
	require.ErrorContains(t, err, "model_index.json (")

	_, _, err = selectFrom(t, pipelineFiles(), Options{Include: []string{"model_index.json"}, Exclude: []string{"*.json"}})
	require.ErrorContains(t, err, "nothing of org/repo left")
}

func TestSelectSingleFileRepo(t *testing.T) {
	files := []hubtest.File{
		text("README.md", "x"),
		lfs("sd_xl_base_1.0.safetensors", 2_500_000),
		lfs("sd_xl_base_1.0_0.9vae.safetensors", 2_500_000),
		lfs("sd_xl_base_1.0.ckpt", 3000),
	}
	_, _, err := selectFrom(t, files, Options{})
	require.ErrorContains(t, err, "org/repo has no model_index.json")
	require.ErrorContains(t, err, "--include")
	require.ErrorContains(t, err, "sd_xl_base_1.0.safetensors (2.50 MB)")
	require.NotContains(t, err.Error(), "README")

	got, _, err := selectFrom(t, files, Options{Include: []string{"sd_xl_base_1.0.safetensors"}})
	require.NoError(t, err)
	require.Equal(t, []string{"sd_xl_base_1.0.safetensors"}, got)
}

func TestSelectLoneComponent(t *testing.T) {
	// A VAE repository: one component at the root, beside a single file.
	files := []hubtest.File{
		text("README.md", "x"),
		text("config.json", `{}`),
		lfs("diffusion_pytorch_model.safetensors", 100),
		lfs("diffusion_pytorch_model.bin", 100),
		lfs("sdxl_vae.safetensors", 100),
		text("images/sample.json", "{}"),
	}
	got, _, err := selectFrom(t, files, Options{})
	require.NoError(t, err)
	require.Equal(t, []string{"config.json", "diffusion_pytorch_model.safetensors"}, got)
}

func TestSelectWeightFormats(t *testing.T) {
	idx := `{"_class_name": "X", "unet": ["diffusers", "UNet2DConditionModel"]}`
	// .bin only: taken, with its variant.
	files := []hubtest.File{text("model_index.json", idx), text("unet/config.json", "{}"),
		lfs("unet/diffusion_pytorch_model.bin", 10), lfs("unet/diffusion_pytorch_model.fp16.bin", 5)}
	got, _, err := selectFrom(t, files, Options{})
	require.NoError(t, err)
	require.Equal(t, []string{"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.bin"}, got)
	got, _, err = selectFrom(t, files, Options{Variant: "fp16"})
	require.NoError(t, err)
	require.Equal(t, []string{"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.fp16.bin"}, got)

	// Only variant weights and none asked for: say which to ask for.
	files = []hubtest.File{text("model_index.json", idx), text("unet/config.json", "{}"),
		lfs("unet/diffusion_pytorch_model.fp16.safetensors", 5)}
	_, _, err = selectFrom(t, files, Options{})
	require.ErrorContains(t, err, "component unet has only variant weights (fp16): choose one with --variant fp16")

	// An index naming a shard the repository lacks.
	files = []hubtest.File{text("model_index.json", idx), text("unet/config.json", "{}"),
		text("unet/diffusion_pytorch_model.safetensors.index.json", shardIndex("a", "diffusion_pytorch_model-00001-of-00002.safetensors")),
	}
	_, _, err = selectFrom(t, files, Options{})
	require.ErrorContains(t, err, "unet/diffusion_pytorch_model.safetensors.index.json names shard unet/diffusion_pytorch_model-00001-of-00002.safetensors, which the repository does not have")

	// A shard index escaping its folder.
	files = []hubtest.File{text("model_index.json", idx), text("unet/config.json", "{}"),
		text("unet/diffusion_pytorch_model.safetensors.index.json", shardIndex("a", "../model_index.json")),
	}
	_, _, err = selectFrom(t, files, Options{})
	require.ErrorContains(t, err, "not a file name")

	// A component whose folder is missing is left (with a warning).
	files = []hubtest.File{text("model_index.json", idx)}
	got, _, err = selectFrom(t, files, Options{})
	require.NoError(t, err)
	require.Equal(t, []string{"model_index.json"}, got)

	// A broken model_index.json.
	files = []hubtest.File{text("model_index.json", `{"unet": [`)}
	_, _, err = selectFrom(t, files, Options{})
	require.ErrorContains(t, err, "org/repo model_index.json")
}

func TestParseWeight(t *testing.T) {
	for name, want := range map[string]weightFile{
		"diffusion_pytorch_model.safetensors":                {ext: "safetensors"},
		"diffusion_pytorch_model.fp16.safetensors":           {variant: "fp16", ext: "safetensors"},
		"diffusion_pytorch_model.non_ema.bin":                {variant: "non_ema", ext: "bin"},
		"model-00001-of-00002.safetensors":                   {ext: "safetensors", shard: true},
		"model.fp16-00002-of-00002.safetensors":              {variant: "fp16", ext: "safetensors", shard: true},
		"pytorch_model.bin.index.json":                       {ext: "bin", index: true},
		"model.safetensors.index.fp16.json":                  {variant: "fp16", ext: "safetensors", index: true},
		"diffusion_pytorch_model.safetensors.index.json":     {ext: "safetensors", index: true},
		"unet/diffusion_pytorch_model.bf16.safetensors":      {variant: "bf16", ext: "safetensors"},
		"text_encoder/model.fp16-00001-of-00003.safetensors": {variant: "fp16", ext: "safetensors", shard: true},
	} {
		got, ok := parseWeight(name)
		require.True(t, ok, name)
		want.path = name
		require.Equal(t, want, got, name)
	}
	for _, name := range []string{"flax_model.msgpack", "sd_xl_base_1.0.safetensors", "model.onnx", "config.json", "diffusion_pytorch_model.fp16.ckpt"} {
		_, ok := parseWeight(name)
		require.False(t, ok, name)
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		match         bool
	}{
		{"*.json", "unet/config.json", true}, // '*' crosses '/', as in fnmatch
		{"unet/*", "unet/sub/x.bin", true},
		{"unet/", "unet/config.json", true},
		{`unet\*.json`, "unet/config.json", true},
		{"unet/*.json", "vae/config.json", false},
		{"model?.bin", "model1.bin", true},
		{"model?.bin", "model.bin", false},
		{"model[0-9].bin", "model7.bin", true},
		{"model[!0-9].bin", "model7.bin", false},
		{"model[!0-9].bin", "modelx.bin", true},
		{"a[.bin", "a[.bin", true},
		{"(x)+.json", "(x)+.json", true},
		{"(x)+.json", "xx.json", false},
		{"Config.json", "config.json", false},
		{"ünet/*", "ünet/a", true},
	} {
		gs, err := compileGlobs([]string{c.pattern})
		require.NoError(t, err, c.pattern)
		require.Equal(t, c.match, matchAny(gs, c.path), "%s ~ %s", c.pattern, c.path)
	}
	_, err := compileGlobs([]string{""})
	require.Error(t, err)
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.00 kB", 1536: "1.54 kB",
		25_000_000: "25.0 MB", 6_938_000_000: "6.94 GB", 123_456_789_000_000: "123 TB"} {
		require.Equal(t, want, FormatBytes(n))
	}
}
