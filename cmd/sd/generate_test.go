package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/hub/hubtest"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/pyjson"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

// Every pipeline fixture through the command line, with sdgo's own torch-
// compatible generator seeded as the case says: the PNG matches diffusers'
// image within one level (a handful of values may differ by 2).
func TestGenerateReproducesFixtures(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(fixture.Dir(), "ref", "*.*.*.safetensors"))
	require.NoError(t, err)
	n := 0
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".safetensors")
		if strings.Contains(name, ".lora.") || strings.Count(name, ".") < 2 {
			continue
		}
		n++
		t.Run(name, func(t *testing.T) {
			ref, err := safetensors.Open(path)
			require.NoError(t, err)
			defer ref.Close()
			var c map[string]json.RawMessage
			require.NoError(t, pyjson.Unmarshal([]byte(ref.Metadata()["case"]), &c))
			str := func(k string) (string, bool) {
				v, ok := c[k]
				if !ok || string(v) == "null" {
					return "", false
				}
				var s string
				require.NoError(t, json.Unmarshal(v, &s))
				return s, true
			}
			raw := func(k string) string { return strings.Trim(string(c[k]), `"`) }
			model, _ := str("model")
			prompt, _ := str("prompt")
			dir := t.TempDir()
			out := filepath.Join(dir, "out.png")
			var sc struct {
				Class  string                     `json:"class"`
				Config map[string]json.RawMessage `json:"config"`
			}
			require.NoError(t, json.Unmarshal(c["scheduler"], &sc))
			cls, _ := json.Marshal(sc.Class)
			sc.Config["_class_name"] = cls
			schedJSON, err := json.Marshal(sc.Config)
			require.NoError(t, err)
			schedFile := filepath.Join(dir, "scheduler_config.json")
			require.NoError(t, os.WriteFile(schedFile, schedJSON, 0o644))
			args := []string{"generate", "--quiet", "--model", fixture.Path(t, model), "--prompt", prompt,
				"--steps", raw("num_inference_steps"), "--guidance", raw("guidance_scale"), "--seed", raw("seed"),
				"--scheduler-config", schedFile, "--out", out}
			if neg, ok := str("negative_prompt"); ok {
				args = append(args, "--negative-prompt", neg)
			}
			for _, k := range []string{"width", "height", "strength", "clip_skip"} {
				if _, ok := c[k]; ok {
					args = append(args, "--"+strings.ReplaceAll(k, "_", "-"), raw(k))
				}
			}
			if p, ok := str("init_image"); ok {
				args = append(args, "--init-image", fixture.Path(t, p))
			}
			if p, ok := str("mask_image"); ok {
				args = append(args, "--mask", fixture.Path(t, p))
			}
			for _, k := range []string{"original_size", "target_size"} {
				if v, ok := c[k]; ok {
					var hw []int
					require.NoError(t, json.Unmarshal(v, &hw))
					args = append(args, "--"+strings.ReplaceAll(k, "_", "-"), fmt.Sprintf("%dx%d", hw[1], hw[0]))
				}
			}
			if v, ok := c["crops_coords_top_left"]; ok {
				var yx []int
				require.NoError(t, json.Unmarshal(v, &yx))
				args = append(args, "--crop-top-left", fmt.Sprintf("%d,%d", yx[0], yx[1]))
			}
			status, stdout, stderr := sd(t, args...)
			require.Equal(t, 0, status, "sd %s\n%s", strings.Join(args, " "), stderr)
			require.Contains(t, stdout, "out.png")

			f, err := os.Open(out)
			require.NoError(t, err)
			defer f.Close()
			img, err := png.Decode(f)
			require.NoError(t, err)
			want, err := ref.Int64s("image_u8")
			require.NoError(t, err)
			b := img.Bounds()
			h, w := b.Dy(), b.Dx()
			require.Len(t, want, 3*h*w)
			worst, over1 := 0, 0
			for y := range h {
				for x := range w {
					r, g, bl, _ := img.At(x, y).RGBA()
					for ch, v := range []uint32{r >> 8, g >> 8, bl >> 8} {
						d := int(want[(ch*h+y)*w+x]) - int(v)
						d = max(d, -d)
						worst = max(worst, d)
						if d > 1 {
							over1++
						}
					}
				}
			}
			require.LessOrEqual(t, worst, 2, "an 8-bit value differs by %d", worst)
			require.LessOrEqual(t, over1, 8)
		})
	}
	require.Equal(t, 12, n)
}

func TestGenerateBadInput(t *testing.T) {
	model := fixture.Path(t, "models/sd15")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--prompt", "x"}, "--model is required"},
		{[]string{"--model", model, "--prompt", "x", "--width", "100"}, "not a multiple of 8 (nearest: 96x"},
		{[]string{"--model", model, "--prompt", "x", "--steps", "-1"}, "--steps"},
		{[]string{"--model", model, "--prompt", "x", "--guidance", "NaN"}, "--guidance"},
		{[]string{"--model", model, "--prompt", "x", "--strength", "1.5"}, "--strength"},
		{[]string{"--model", model, "--prompt", "x", "--mask", "m.png"}, "--mask needs --init-image"},
		{[]string{"--model", model, "--prompt", "x", "--seed", "-3"}, "--seed"},
		{[]string{"--model", model, "--prompt", "x", "--rng", "quantum"}, "unknown generator"},
		{[]string{"--model", model, "--prompt", "x", "--device", "tpu"}, `unknown device "tpu"`},
		{[]string{"--model", model, "--prompt", "x", "--precision", "fp16"}, "the cpu computes in fp32"},
		{[]string{"--model", model, "--prompt", "x", "--device", "cuda", "--precision", "fp8"}, `unknown precision "fp8"`},
		{[]string{"--model", model, "--prompt", "x", "--out", "/nonexistent/dir/x.png"}, "cannot write /nonexistent/dir/x.png"},
		{[]string{"--model", model, "--prompt", "x", "--scheduler", "nope", "--out", filepath.Join(t.TempDir(), "o.png")}, "nope"},
		{[]string{"--model", model, "--prompt", "x", "--init-image", "/nonexistent.png"}, "nonexistent.png"},
		{[]string{"--model", model, "--prompt", "x", "--vae-tiling", "maybe"}, "--vae-tiling"},
	} {
		status, _, stderr := sd(t, append([]string{"generate"}, c.args...)...)
		require.NotEqual(t, 0, status, "%v", c.args)
		require.Contains(t, stderr, c.want, "%v", c.args)
	}
	// Off macOS, --device metal says that Metal needs it.
	if runtime.GOOS != "darwin" {
		status, _, stderr := sd(t, "generate", "--model", model, "--prompt", "x", "--device", "metal", "--out", filepath.Join(t.TempDir(), "o.png"))
		require.Equal(t, 1, status)
		require.Contains(t, stderr, "Metal needs macOS")
	}
	// Without an NVIDIA GPU, --device cuda fails at once and says why.
	if b, err := tensor.OpenDevice("cuda"); err == nil {
		closeDevice(b)
	} else {
		status, _, stderr := sd(t, "generate", "--model", model, "--prompt", "x", "--device", "cuda", "--out", filepath.Join(t.TempDir(), "o.png"))
		require.Equal(t, 1, status)
		require.Contains(t, stderr, "--device cuda: tensor: device cuda: cuda: ")
	}
}

// The PNG carries the parameters in A1111's format.
func TestGenerateWritesParameters(t *testing.T) {
	out := filepath.Join(t.TempDir(), "p.png")
	status, stdout, stderr := sd(t, "generate", "--quiet", "--json", "--model", fixture.Path(t, "models/sd15"), "-p", "a cat",
		"-n", "ugly", "--steps", "2", "--seed", "7", "--out", out, "--batch", "2")
	require.Equal(t, 0, status, stderr)
	var res struct {
		Images []struct {
			Path string `json:"path"`
			Seed uint64 `json:"seed"`
		} `json:"images"`
		Seed uint64 `json:"seed"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	require.Len(t, res.Images, 2)
	require.Equal(t, uint64(7), res.Seed)
	data, err := os.ReadFile(res.Images[1].Path)
	require.NoError(t, err)
	require.Contains(t, string(data), "parameters\x00a cat\nNegative prompt: ugly\nSteps: 2, Sampler: PNDMScheduler, CFG scale: 7.5, Seed: 7, Size: 64x64")
	f, err := os.Open(res.Images[0].Path)
	require.NoError(t, err)
	defer f.Close()
	_, err = png.Decode(f)
	require.NoError(t, err, "the spliced text chunk leaves a valid PNG")
}

// A preset name downloads its repository through the Hub client (here a fake
// Hub holding the tiny SD 1.5 folder under the preset's repository id).
func TestGeneratePreset(t *testing.T) {
	srv := hubtest.NewServer(t)
	dir := fixture.Path(t, "models/sd15")
	files := hubtest.FilesFromDir(t, dir)
	srv.AddRepo("stable-diffusion-v1-5/stable-diffusion-v1-5", files...)
	t.Setenv("HF_ENDPOINT", srv.URL)
	t.Setenv("HF_HOME", t.TempDir())
	t.Setenv("HF_HUB_CACHE", "")
	out := filepath.Join(t.TempDir(), "v15.png")
	status, _, stderr := sd(t, "generate", "--quiet", "--model", "v1-5", "-p", "a fox", "--steps", "1", "--width", "64", "--height", "64", "--seed", "1", "--out", out)
	require.Equal(t, 0, status, stderr)
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	require.Equal(t, 64, img.Bounds().Dx())
}

// --plain-prompt with a prompt over 77 tokens warns on stderr, as diffusers does.
func TestGenerateWarnsOnTruncation(t *testing.T) {
	out := filepath.Join(t.TempDir(), "w.png")
	status, _, stderr := sd(t, "generate", "--quiet", "--model", fixture.Path(t, "models/sd15"), "-p", strings.Repeat("a red fox ", 40),
		"--plain-prompt", "--steps", "1", "--seed", "1", "--out", out, "--vae-tiling", "on")
	require.Equal(t, 0, status, stderr)
	require.Contains(t, stderr, "truncated")
}
