package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/pyjson"
	"github.com/stretchr/testify/require"
)

// loraCase is the metadata of a ref/<model>.lora.<names> case.
type loraCase struct {
	Model          string  `json:"model"`
	Prompt         string  `json:"prompt"`
	NegativePrompt *string `json:"negative_prompt"`
	Steps          int     `json:"num_inference_steps"`
	Guidance       float64 `json:"guidance_scale"`
	Seed           uint64  `json:"seed"`
	Width          int     `json:"width"`
	Height         int     `json:"height"`
	Loras          []struct {
		File  string  `json:"file"`
		Scale float64 `json:"scale"`
	} `json:"loras"`
	Scheduler struct {
		Class  string                     `json:"class"`
		Config map[string]json.RawMessage `json:"config"`
	} `json:"scheduler"`
}

func decodePNG(t *testing.T, path string) image.Image {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	return img
}

// compareU8 checks a PNG against a reference image_u8 (CHW): within one level
// everywhere but a handful of values, never more than 2.
func compareU8(t *testing.T, img image.Image, want []int64) {
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
}

// Every ref/*.lora.* case through `sd generate`: once with --lora FILE:SCALE,
// once with the prompt's <lora:NAME:SCALE> tags found in --lora-dir, which
// must draw the same pixels.
func TestGenerateLoRAFixtures(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(fixture.Dir(), "ref", "*.lora.*.safetensors"))
	require.NoError(t, err)
	require.Len(t, paths, 6)
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".safetensors")
		t.Run(name, func(t *testing.T) {
			ref, err := safetensors.Open(path)
			require.NoError(t, err)
			defer ref.Close()
			var c loraCase
			require.NoError(t, pyjson.Unmarshal([]byte(ref.Metadata()["case"]), &c))
			dir := t.TempDir()
			cls, _ := json.Marshal(c.Scheduler.Class)
			c.Scheduler.Config["_class_name"] = cls
			schedJSON, err := json.Marshal(c.Scheduler.Config)
			require.NoError(t, err)
			schedFile := filepath.Join(dir, "scheduler_config.json")
			require.NoError(t, os.WriteFile(schedFile, schedJSON, 0o644))
			common := func(out, prompt string) []string {
				args := []string{"generate", "--quiet", "--json", "--model", fixture.Path(t, c.Model), "--prompt", prompt,
					"--steps", fmt.Sprint(c.Steps), "--guidance", fmt.Sprint(c.Guidance), "--seed", fmt.Sprint(c.Seed),
					"--width", fmt.Sprint(c.Width), "--height", fmt.Sprint(c.Height), "--scheduler-config", schedFile, "--out", out}
				if c.NegativePrompt != nil {
					args = append(args, "--negative-prompt", *c.NegativePrompt)
				}
				return args
			}

			byFlag := filepath.Join(dir, "flag.png")
			args := common(byFlag, c.Prompt)
			loraDir := filepath.Join(dir, "loras")
			require.NoError(t, os.Mkdir(loraDir, 0o755))
			tagged := c.Prompt
			for i, l := range c.Loras {
				args = append(args, "--lora", fmt.Sprintf("%s:%g", fixture.Path(t, l.File), l.Scale))
				data, err := os.ReadFile(fixture.Path(t, l.File))
				require.NoError(t, err)
				tag := fmt.Sprintf("lora%d", i)
				require.NoError(t, os.WriteFile(filepath.Join(loraDir, tag+".safetensors"), data, 0o644))
				tagged += fmt.Sprintf(" <lora:%s:%g>", tag, l.Scale)
			}
			status, stdout, stderr := sd(t, args...)
			require.Equal(t, 0, status, "sd %s\n%s", strings.Join(args, " "), stderr)
			var res struct {
				Loras []struct {
					File  string  `json:"file"`
					Scale float64 `json:"scale"`
				} `json:"loras"`
			}
			require.NoError(t, json.Unmarshal([]byte(stdout), &res))
			require.Len(t, res.Loras, len(c.Loras))
			for i, l := range c.Loras {
				require.Equal(t, fixture.Path(t, l.File), res.Loras[i].File)
				require.Equal(t, l.Scale, res.Loras[i].Scale)
			}
			want, err := ref.Int64s("image_u8")
			require.NoError(t, err)
			img := decodePNG(t, byFlag)
			compareU8(t, img, want)
			data, err := os.ReadFile(byFlag)
			require.NoError(t, err)
			require.Contains(t, string(data), fmt.Sprintf("<lora:%s:%g>", strings.TrimSuffix(filepath.Base(c.Loras[0].File), ".safetensors"), c.Loras[0].Scale),
				"the PNG's parameters name the LoRA as A1111 does")

			byTag := filepath.Join(dir, "tag.png")
			args = append(common(byTag, tagged), "--lora-dir", loraDir)
			status, _, stderr = sd(t, args...)
			require.Equal(t, 0, status, "sd %s\n%s", strings.Join(args, " "), stderr)
			require.Equal(t, img, decodePNG(t, byTag), "tags in the prompt draw what --lora draws")
		})
	}
}

func TestGenerateLoRABadInput(t *testing.T) {
	sd15 := fixture.Path(t, "models/sd15")
	xl := fixture.Path(t, "lora/sdxl.b.kohya.safetensors")
	good := fixture.Path(t, "lora/sd15.a.diffusers.safetensors")
	dir := t.TempDir()
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "style.safetensors"), data, 0o644))
	out := filepath.Join(t.TempDir(), "o.png")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--lora", good + ":abc"}, []string{`scale "abc" is not a number`}},
		{[]string{"--lora", good + ":NaN"}, []string{"not a number"}},
		{[]string{"--lora", filepath.Join(dir, "missing.safetensors")}, []string{"missing.safetensors"}},
		{[]string{"--lora", xl}, []string{"sdxl.b.kohya.safetensors", "lora_te1_text_model_encoder_layers_0_mlp_fc1", "SDXL", "SD 1.x"}},
		{[]string{"--lora", good, "--lora", xl + ":0.5"}, []string{"sdxl.b.kohya.safetensors"}},
		{[]string{"--prompt", "a cat <lora:style:0.5>"}, []string{`LoRA "style"`, "--lora-dir"}},
		{[]string{"--prompt", "a cat <lora:../style:0.5>", "--lora-dir", dir}, []string{`"../style"`, "not a path"}},
		{[]string{"--prompt", "a cat <lora:nope>", "--lora-dir", dir}, []string{"no such LoRA", "nope"}},
		{[]string{"--prompt", "a cat <lora:style:x>", "--lora-dir", dir}, []string{`scale "x" is not a number`}},
	} {
		args := append([]string{"generate", "--quiet", "--model", sd15, "--prompt", "a cat", "--steps", "1", "--out", out}, c.args...)
		status, _, stderr := sd(t, args...)
		require.NotEqual(t, 0, status, "%v", c.args)
		for _, w := range c.want {
			require.Contains(t, stderr, w, "%v", c.args)
		}
	}
	_, err = os.Stat(out)
	require.True(t, os.IsNotExist(err), "nothing is written when the LoRAs are refused")
}

func TestInfoLoRA(t *testing.T) {
	status, stdout, stderr := sd(t, "info", fixture.Path(t, "lora/sdxl.b.kohya.safetensors"))
	require.Equal(t, 0, status, stderr)
	for _, s := range []string{"format      kohya", "family      SDXL (from lora_te1_", "modules     278", "ranks       8 (278)", "alphas      4 (278)",
		"unet (242), text_encoder (18), text_encoder_2 (18)", "attn1.to_q (22)", "proj_in (11)", "self_attn.q_proj (6)"} {
		require.Contains(t, stdout, s)
	}
	status, stdout, stderr = sd(t, "info", "--json", fixture.Path(t, "lora/sd15.a.diffusers.safetensors"))
	require.Equal(t, 0, status, stderr)
	var r loraInfo
	require.NoError(t, json.Unmarshal([]byte(stdout), &r))
	require.Equal(t, "lora", r.Kind)
	require.Equal(t, "diffusers", r.Format)
	require.Equal(t, "", r.Family)
	require.Contains(t, r.FamilyName, "SD 1.x or 2.x")
	require.Len(t, r.Modules, 210)
	for _, m := range r.Modules {
		require.Equal(t, 4, m.Rank)
		require.Equal(t, 4.0, m.Alpha, "no alpha: alpha = rank")
	}
	var projIn loraModule
	for _, m := range r.Modules {
		if m.Key == "unet.down_blocks.0.attentions.0.proj_in" {
			projIn = m
		}
	}
	require.Equal(t, loraModule{Key: "unet.down_blocks.0.attentions.0.proj_in", Component: "unet", Path: "down_blocks.0.attentions.0.proj_in",
		Rank: 4, Alpha: 4, In: 32, Out: 32, Kernel: []int{1, 1}}, projIn)

	// A LyCORIS file is recognised and refused by its variant's name.
	loha := filepath.Join(t.TempDir(), "loha.safetensors")
	require.NoError(t, safetensors.WriteFile(loha, []safetensors.Tensor{
		safetensors.F32Tensor("lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a", []int{32, 4}, make([]float32, 128)),
	}, nil))
	status, _, stderr = sd(t, "info", loha)
	require.NotEqual(t, 0, status)
	require.Contains(t, stderr, "LoHa")
	require.Contains(t, stderr, "loha.safetensors")

	// A model file is still described as a model.
	status, stdout, stderr = sd(t, "info", "--config", fixture.Path(t, "models/sd15"), fixture.Path(t, "models/sd15.single.safetensors"))
	require.Equal(t, 0, status, stderr)
	require.Contains(t, stdout, "single file")
}
