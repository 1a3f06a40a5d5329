package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/stretchr/testify/require"
)

// fileParams counts the parameters of a safetensors file, per dtype.
func fileParams(t *testing.T, path string) (int64, map[string]int64) {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var n int64
	d := map[string]int64{}
	for _, name := range f.Names() {
		i, _ := f.Info(name)
		n += int64(i.Numel())
		d[string(i.DType)] += int64(i.Numel())
	}
	return n, d
}

func TestInfoFolder(t *testing.T) {
	dir := fixture.Path(t, "models/sdxl")
	status, out, errOut := sd(t, "info", dir)
	require.Equal(t, 0, status, errOut)
	for _, want := range []string{
		`layout +diffusers folder`,
		`family +SDXL`,
		`pipeline +StableDiffusionXLPipeline`,
		`prediction +epsilon`,
		`scheduler +EulerDiscreteScheduler`,
		`empty negative prompt +zeros \(force_zeros_for_empty_prompt\)`,
		`  text_encoder_2 tokenizer: ` + regexp.QuoteMeta(filepath.Join(dir, "tokenizer_2")),
		`  unet: ` + regexp.QuoteMeta(filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors")),
	} {
		require.Regexp(t, "(?m)^"+want+"$", out)
	}
	// One line per component: name, class, dtype, parameters, bytes, tensors.
	unetParams, _ := fileParams(t, filepath.Join(dir, "unet", "diffusion_pytorch_model.safetensors"))
	require.Regexp(t, regexp.MustCompile(`(?m)^  unet +UNet2DConditionModel +F16 +`+regexp.QuoteMeta(count(unetParams))+` params +`+regexp.QuoteMeta(size(2*unetParams))+` +716 tensors$`), out)
	require.Regexp(t, `(?m)^  text_encoder_2 +CLIPTextModelWithProjection +F16 +.* 53 tensors$`, out)
	require.Regexp(t, `(?m)^  vae +AutoencoderKL +F16 +.* 240 tensors$`, out)

	status, out, _ = sd(t, "info", fixture.Path(t, "models/sd15-inpaint"))
	require.Equal(t, 0, status)
	require.Contains(t, out, "SD 1.x (inpainting)")
	require.Regexp(t, `(?m)^  text_encoder +CLIPTextModel +F32 +`, out)
	require.NotContains(t, out, "force_zeros")
}

func TestInfoSingleFileJSON(t *testing.T) {
	dir := fixture.Path(t, "models/sd21-v")
	file := fixture.Path(t, "models/sd21-v.single.safetensors")
	// Flags may follow the model.
	status, out, errOut := sd(t, "info", file, "--config", dir, "--json")
	require.Equal(t, 0, status, errOut)
	var r infoReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Equal(t, file, r.Path)
	require.Equal(t, "single-file", r.Layout)
	require.Equal(t, dir, r.ConfigDir)
	require.Equal(t, "sd2", r.Family)
	require.Equal(t, "SD 2.x", r.FamilyName)
	require.False(t, r.Inpaint)
	require.Equal(t, "v_prediction", r.PredictionType)
	require.Equal(t, "DDIMScheduler", r.Scheduler)
	require.Empty(t, r.Unused)
	require.Len(t, r.Components, 3)
	var total int64
	for i, want := range []struct{ name, class, file string }{
		{"unet", "UNet2DConditionModel", "unet/diffusion_pytorch_model.safetensors"},
		{"vae", "AutoencoderKL", "vae/diffusion_pytorch_model.safetensors"},
		{"text_encoder", "CLIPTextModel", "text_encoder/model.safetensors"},
	} {
		c := r.Components[i]
		require.Equal(t, want.name, c.Name)
		require.Equal(t, want.class, c.Class)
		require.Equal(t, []string{file}, c.Files)
		// The single file's components hold as many parameters, of the same
		// dtypes, as the folder's files.
		params, dtypes := fileParams(t, filepath.Join(dir, want.file))
		require.Equal(t, params, c.Params, want.name)
		require.Equal(t, dtypes, c.DTypes, want.name)
		total += params
	}
	require.Equal(t, map[string]int64{"BF16": r.Components[1].Params}, r.Components[1].DTypes, "the sd21-v VAE is stored bfloat16")
	require.Equal(t, 2*r.Components[1].Params, r.Components[1].Bytes)
	require.Nil(t, r.Components[0].Tokenizer)
	require.NotNil(t, r.Components[2].Tokenizer)
	require.Equal(t, filepath.Join(dir, "tokenizer"), *r.Components[2].Tokenizer)
	require.Equal(t, total, r.Params)

	status, out, _ = sd(t, "info", "--json", "--prediction-type", "epsilon", "--config", dir, file)
	require.Equal(t, 0, status)
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Equal(t, "epsilon", r.PredictionType)
	require.Len(t, r.Notes, 1)
}

func TestInfoErrors(t *testing.T) {
	status, _, errOut := sd(t, "info")
	require.Equal(t, 2, status)
	require.Contains(t, errOut, "want one MODEL")

	missing := filepath.Join(t.TempDir(), "nope.safetensors")
	status, _, errOut = sd(t, "info", missing)
	require.Equal(t, 1, status)
	require.Contains(t, errOut, missing)

	// The tiny single file against the real SD 1.5 architecture.
	file := fixture.Path(t, "models/sd15.single.safetensors")
	status, _, errOut = sd(t, "info", file)
	require.Equal(t, 1, status)
	require.Contains(t, errOut, `tensor "conv_in.weight" has shape [32 4 3 3]; the config implies [320 4 3 3]`)
	require.Contains(t, errOut, "Options.Config")

	status, _, errOut = sd(t, "info", "--prediction-type", "x0", fixture.Path(t, "models/sd15"))
	require.Equal(t, 1, status)
	require.Contains(t, errOut, `prediction type "x0"`)
}

func TestHumanUnits(t *testing.T) {
	require.Equal(t, "859.52M", count(859520964))
	require.Equal(t, "2.57B", count(2567463684))
	require.Equal(t, "87.3K", count(87328))
	require.Equal(t, "12", count(12))
	require.Equal(t, "1.60 GiB", size(1719041638))
	require.Equal(t, "512 B", size(512))
	require.Equal(t, "2.00 KiB", size(2048))
	require.Equal(t, "F16+F32", dtypes(map[string]int64{"F32": 10, "F16": 20}))
}
