package lora

import (
	"iter"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/clip"
	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/pyjson"
	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

// loadTarget loads a fixture model's UNet and text encoders onto the CPU and
// returns them as the pipeline gives them to LoRAs.
func loadTarget(t *testing.T, rel string) *Target {
	m, err := model.Load(fixture.Path(t, rel), model.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	b := tensor.NewCPU()
	u, err := unet.Load(weights.Params(m.UNetWeights, b), m.UNet, unet.Options{})
	require.NoError(t, err)
	t.Cleanup(u.Release)
	tg := &Target{Family: m.Family, UNet: m.UNet, Components: map[string]iter.Seq2[string, nn.Adaptable]{UNet: u.Layers()}}
	for _, te := range m.TextEncoders {
		tm, err := clip.Load(weights.Params(te.Weights, b), te.Config)
		require.NoError(t, err)
		t.Cleanup(tm.Release)
		tg.Components[te.Name] = tm.Layers()
	}
	return tg
}

// layer returns a target's layer by component and diffusers name.
func (t *Target) layer(tb testing.TB, comp, name string) nn.Adaptable {
	l := t.index(comp).layers[name]
	require.NotNil(tb, l, "%s %s", comp, name)
	return l
}

// attachedCount counts the target's layers with adapters.
func (t *Target) attachedCount() int {
	n := 0
	for _, c := range t.Components {
		for _, l := range c {
			switch l := l.(type) {
			case *nn.Linear:
				n += min(len(l.Adapters), 1)
			case *nn.Conv2d:
				n += min(len(l.Adapters), 1)
			}
		}
	}
	return n
}

// effectiveWeight reads the weight a linear layer or 1x1 convolution computes
// with, adapters included, as a float32 [out, in]: the layer (without its
// bias) applied to the identity. Without adapters that is the weight, exactly.
func effectiveWeight(t *testing.T, l nn.Adaptable) []float32 {
	ws := l.WeightShape()
	out, in := ws[0], ws[1]
	eye := make([]float32, in*in)
	for i := range in {
		eye[i*in+i] = 1
	}
	var y *tensor.Tensor
	var err error
	switch l := l.(type) {
	case *nn.Linear:
		x, xerr := tensor.FromFloat32(l.Backend(), eye, in, in)
		require.NoError(t, xerr)
		defer x.Release()
		y, err = (&nn.Linear{Weight: l.Weight, Adapters: l.Adapters}).Forward(x)
	case *nn.Conv2d:
		require.Equal(t, []int{1, 1}, ws[2:], "a 1x1 convolution")
		x, xerr := tensor.FromFloat32(l.Backend(), eye, in, in, 1, 1)
		require.NoError(t, xerr)
		defer x.Release()
		y, err = (&nn.Conv2d{Weight: l.Weight, Params: l.Params, Adapters: l.Adapters}).Forward(x)
	}
	require.NoError(t, err)
	defer y.Release()
	v := values(t, y) // [in, out]
	w := make([]float32, out*in)
	for i := range in {
		for o := range out {
			w[o*in+i] = v[i*out+o]
		}
	}
	return w
}

// refCase is the metadata of a ref/<model>.lora.<names> case.
type refCase struct {
	Model string `json:"model"`
	Loras []struct {
		File  string  `json:"file"`
		Scale float64 `json:"scale"`
	} `json:"loras"`
}

func openCase(t *testing.T, name string) (*safetensors.File, refCase, []Adapter) {
	ref, err := safetensors.Open(fixture.Path(t, "ref/"+name+".safetensors"))
	require.NoError(t, err)
	t.Cleanup(func() { ref.Close() })
	var c refCase
	require.NoError(t, pyjson.Unmarshal([]byte(ref.Metadata()["case"]), &c))
	var ads []Adapter
	for _, s := range c.Loras {
		l, err := Open(fixture.Path(t, s.File))
		require.NoError(t, err)
		ads = append(ads, Adapter{LoRA: l, Scale: s.Scale})
	}
	return ref, c, ads
}

func values(t *testing.T, x *tensor.Tensor) []float32 {
	require.NotNil(t, x)
	v, err := x.Float32s()
	require.NoError(t, err)
	return v
}

// mergedRefs returns a case's merged.<component>.<module> tensors by
// component and diffusers module name.
func mergedRefs(t *testing.T, ref *safetensors.File) map[[2]string][]float32 {
	out := map[[2]string][]float32{}
	for _, key := range ref.Names() {
		rest, ok := strings.CutPrefix(key, "merged.")
		if !ok {
			continue
		}
		comp, mod, _ := strings.Cut(rest, ".")
		if comp != UNet {
			mod = "text_model." + mod // the fixture names follow transformers 5
		}
		v, err := ref.Float32s(key)
		require.NoError(t, err)
		out[[2]string{comp, mod}] = v
	}
	return out
}

// Every merged.<component>.<module> of the single-LoRA cases, seen through the
// layer with the LoRA attached (the layer applied to the identity): W + scale
// x alpha/rank x up @ down to float32 rounding. Detached, the layer computes
// with W again, bit for bit.
func TestAttachedMatchesFixtureMerge(t *testing.T) {
	for _, name := range []string{"sd15.lora.a", "sd15.lora.b", "sdxl.lora.a", "sdxl.lora.b"} {
		t.Run(name, func(t *testing.T) {
			ref, c, ads := openCase(t, name)
			require.Len(t, ads, 1)
			tg := loadTarget(t, c.Model)
			refs := mergedRefs(t, ref)
			require.Len(t, refs, 3)
			base := map[[2]string][]float32{}
			for id := range refs {
				base[id] = effectiveWeight(t, tg.layer(t, id[0], id[1]))
			}
			set, err := Prepare(tg, ads)
			require.NoError(t, err)
			defer set.Release()
			require.Zero(t, tg.attachedCount(), "Prepare attaches nothing")
			require.NoError(t, set.Attach())
			require.Equal(t, set.Stats().Layers, tg.attachedCount())
			for id, want := range refs {
				l := tg.layer(t, id[0], id[1])
				got := effectiveWeight(t, l)
				worst, scale, moved := 0.0, 1.0, 0.0
				for i := range want {
					worst = math.Max(worst, math.Abs(float64(want[i]-got[i])))
					scale = math.Max(scale, math.Abs(float64(want[i])))
					moved = math.Max(moved, math.Abs(float64(want[i]-base[id][i])))
				}
				require.Greater(t, moved, 1e-3, "%v: the LoRA changes the weight", id)
				require.LessOrEqual(t, worst, 4*scale/(1<<24), "%v: max abs error %g", id, worst)
			}
			set.Detach()
			require.Zero(t, tg.attachedCount())
			for id, w := range base {
				require.Equal(t, w, effectiveWeight(t, tg.layer(t, id[0], id[1])), "%v: detached, the weight is the model's", id)
			}
		})
	}
}

// The stacked cases attach both LoRAs' modules to the same layers, which then
// compute with W + Δa + Δb, Δa and Δb read from the single cases' merged
// tensors.
func TestStackedAdapters(t *testing.T) {
	for _, m := range []string{"sd15", "sdxl"} {
		t.Run(m, func(t *testing.T) {
			_, c, ads := openCase(t, m+".lora.a+b")
			require.Len(t, ads, 2)
			refA, _, _ := openCase(t, m+".lora.a")
			refB, _, _ := openCase(t, m+".lora.b")
			tg := loadTarget(t, c.Model)
			base := map[[2]string][]float32{}
			a, b := mergedRefs(t, refA), mergedRefs(t, refB)
			for id := range a {
				base[id] = effectiveWeight(t, tg.layer(t, id[0], id[1]))
			}
			both, err := Prepare(tg, ads)
			require.NoError(t, err)
			defer both.Release()
			require.NoError(t, both.Attach())
			st := both.Stats()
			require.Equal(t, len(ads[0].LoRA.Modules)+len(ads[1].LoRA.Modules), st.Modules)
			for id := range a {
				got := effectiveWeight(t, tg.layer(t, id[0], id[1]))
				for i := range got {
					want := float64(base[id][i]) + float64(a[id][i]-base[id][i]) + float64(b[id][i]-base[id][i])
					require.InDelta(t, want, got[i], 1e-6, "%v[%d]", id, i)
				}
			}
		})
	}
}

// raw is a tensor to write into a LoRA file.
type raw struct {
	dtype safetensors.DType
	shape []int
	data  []byte
}

// readAll reads a safetensors file's tensors as stored.
func readAll(t *testing.T, path string) map[string]raw {
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]raw{}
	for _, n := range f.Names() {
		info, _ := f.Info(n)
		b, err := f.Bytes(n)
		require.NoError(t, err)
		out[n] = raw{info.DType, info.Shape, append([]byte(nil), b...)}
	}
	return out
}

func writeFile(t *testing.T, path string, ts map[string]raw) {
	var list []safetensors.Tensor
	for n, r := range ts {
		list = append(list, safetensors.Tensor{Name: n, DType: r.dtype, Shape: r.shape, Data: r.data})
	}
	require.NoError(t, safetensors.WriteFile(path, list, nil))
}

// sdxlSGM maps the tiny SDXL UNet's SGM attention blocks to diffusers' (the
// table diffusers' and kohya's converters hold for SDXL).
var sdxlSGM = map[string]string{
	"input_blocks_4_1": "down_blocks.1.attentions.0", "input_blocks_5_1": "down_blocks.1.attentions.1",
	"input_blocks_7_1": "down_blocks.2.attentions.0", "input_blocks_8_1": "down_blocks.2.attentions.1",
	"middle_block_1":    "mid_block.attentions.0",
	"output_blocks_0_1": "up_blocks.0.attentions.0", "output_blocks_1_1": "up_blocks.0.attentions.1",
	"output_blocks_2_1": "up_blocks.0.attentions.2", "output_blocks_3_1": "up_blocks.1.attentions.0",
	"output_blocks_4_1": "up_blocks.1.attentions.1", "output_blocks_5_1": "up_blocks.1.attentions.2",
}

var blockRE = regexp.MustCompile(`^(input_blocks_\d+_1|middle_block_1|output_blocks_\d+_1)_(.*)$`)

// dotted turns a kohya module path back into dots, knowing the few names with
// underscores of their own.
func dotted(p string) string {
	s := strings.ReplaceAll(p, "_", ".")
	for _, fix := range []string{"text.model", "self.attn", "q.proj", "k.proj", "v.proj", "out.proj", "transformer.blocks", "to.q", "to.k", "to.v", "to.out", "proj.in", "proj.out", "down.blocks", "up.blocks", "mid.block"} {
		s = strings.ReplaceAll(s, fix, strings.ReplaceAll(fix, ".", "_"))
	}
	return s
}

// toDiffusers writes a diffusers training-script copy of a kohya LoRA, with
// alpha/rank folded into the up factors' scale by returning it.
func toDiffusers(t *testing.T, kohya map[string]raw) (map[string]raw, map[string]float64) {
	out := map[string]raw{}
	mult := map[string]float64{}
	for n, r := range kohya {
		mod, suffix, _ := strings.Cut(n, ".")
		comp, path, _, err := component(mod)
		require.NoError(t, err)
		if comp == UNet {
			if m := blockRE.FindStringSubmatch(path); m != nil {
				path = sdxlSGM[m[1]] + "." + dotted(m[2])
			} else {
				path = dotted(path)
			}
		} else {
			path = dotted(path)
		}
		var key string
		switch {
		case suffix == "alpha":
			v := float64(math.Float32frombits(uint32(r.data[0]) | uint32(r.data[1])<<8 | uint32(r.data[2])<<16 | uint32(r.data[3])<<24))
			mult[comp+"."+path] = v
			continue
		case comp == UNet:
			key = "unet." + path + ".lora." + strings.TrimPrefix(suffix, "lora_")
		default:
			key = comp + "." + path + ".lora_linear_layer." + strings.TrimPrefix(suffix, "lora_")
		}
		out[key] = r
	}
	return out, mult
}

// Loading the same LoRA in another format gives the same adapters: a kohya
// file (SD 1.x diffusers names, SDXL SGM names, alpha) against a diffusers
// training-script copy, and a diffusers file against a kohya and a PEFT copy.
func TestFormatsAgree(t *testing.T) {
	dir := t.TempDir()
	for _, m := range []string{"sd15", "sdxl"} {
		t.Run(m, func(t *testing.T) {
			tg := loadTarget(t, "models/"+m)
			prepare := func(path string, scale float64) *Set {
				l, err := Open(path)
				require.NoError(t, err)
				set, err := Prepare(tg, []Adapter{{LoRA: l, Scale: scale}})
				require.NoError(t, err)
				t.Cleanup(set.Release)
				return set
			}
			same := func(a, b *Set) {
				require.Equal(t, a.Stats(), b.Stats())
				require.Len(t, b.layers, len(a.layers))
				for i, x := range a.layers {
					y := b.layers[i]
					require.Equal(t, x.comp+" "+x.name, y.comp+" "+y.name)
					require.Same(t, x.layer, y.layer)
					require.Len(t, y.adapters, len(x.adapters))
					for j, p := range x.adapters {
						q := y.adapters[j]
						require.Equal(t, p.Scale, q.Scale, "%s %s", x.comp, x.name)
						require.Equal(t, values(t, p.Down), values(t, q.Down), "%s %s", x.comp, x.name)
						require.Equal(t, values(t, p.Up), values(t, q.Up), "%s %s", x.comp, x.name)
						require.Equal(t, p.Down.Shape(), q.Down.Shape())
						require.Equal(t, p.Up.Shape(), q.Up.Shape())
					}
				}
			}

			// kohya -> diffusers: every module has alpha 2 of rank 4 (sd15) or 4 of 8 (sdxl).
			kohyaPath := fixture.Path(t, "lora/"+m+".b.kohya.safetensors")
			kohya := readAll(t, kohyaPath)
			diff, alphas := toDiffusers(t, kohya)
			require.NotEmpty(t, alphas)
			l, err := Open(kohyaPath)
			require.NoError(t, err)
			for _, a := range alphas {
				require.Equal(t, l.Modules[0].Multiplier(), a/float64(l.Modules[0].Rank))
			}
			p := filepath.Join(dir, m+".b.as-diffusers.safetensors")
			writeFile(t, p, diff)
			dl, err := Open(p)
			require.NoError(t, err)
			require.Equal(t, Diffusers, dl.Format)
			same(prepare(kohyaPath, 0.6), prepare(p, 0.6*l.Modules[0].Multiplier()))

			// diffusers -> kohya and PEFT.
			diffPath := fixture.Path(t, "lora/"+m+".a.diffusers.safetensors")
			koh, peft := map[string]raw{}, map[string]raw{}
			for n, r := range readAll(t, diffPath) {
				var mod, side string
				for _, s := range []string{".lora.down.weight", ".lora.up.weight", ".lora_linear_layer.down.weight", ".lora_linear_layer.up.weight"} {
					if x, ok := strings.CutSuffix(n, s); ok {
						mod, side = x, map[bool]string{true: "down", false: "up"}[strings.Contains(s, "down")]
					}
				}
				require.NotEmpty(t, mod, n)
				comp, path, _, err := component(mod)
				require.NoError(t, err)
				prefix := map[string]string{UNet: "lora_unet_", TextEncoder: "lora_te1_", TextEncoder2: "lora_te2_"}[comp]
				if m == "sd15" && comp == TextEncoder {
					prefix = "lora_te_"
				}
				koh[prefix+strings.ReplaceAll(path, ".", "_")+".lora_"+side+".weight"] = r
				peft[comp+"."+path+map[string]string{"down": ".lora_A.weight", "up": ".lora_B.weight"}[side]] = r
			}
			kp := filepath.Join(dir, m+".a.as-kohya.safetensors")
			writeFile(t, kp, koh)
			pp := filepath.Join(dir, m+".a.as-peft.safetensors")
			writeFile(t, pp, peft)
			kl, err := Open(kp)
			require.NoError(t, err)
			require.Equal(t, Kohya, kl.Format)
			pl, err := Open(pp)
			require.NoError(t, err)
			require.Equal(t, PEFT, pl.Format)
			ref := prepare(diffPath, 0.8)
			same(ref, prepare(kp, 0.8))
			same(ref, prepare(pp, 0.8))
		})
	}
}

// The original (LDM/SGM) names of the tiny SDXL UNet's modules, for kohya's
// SDXL keys: attention blocks, resnets, samplers and the embeddings.
func TestUNetOriginalModules(t *testing.T) {
	tg := loadTarget(t, "models/sdxl")
	var mods []string
	for m := range tg.Components[UNet] {
		mods = append(mods, m)
	}
	got := model.UNetOriginalModules(tg.UNet, mods)
	for orig, want := range map[string]string{
		"input_blocks.0.0":                                  "conv_in",
		"input_blocks.1.0.in_layers.2":                      "down_blocks.0.resnets.0.conv1",
		"input_blocks.3.0.op":                               "down_blocks.0.downsamplers.0.conv",
		"input_blocks.4.1.transformer_blocks.0.attn1.to_q":  "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q",
		"input_blocks.8.1.transformer_blocks.1.ff.net.2":    "down_blocks.2.attentions.1.transformer_blocks.1.ff.net.2",
		"middle_block.0.emb_layers.1":                       "mid_block.resnets.0.time_emb_proj",
		"middle_block.1.proj_in":                            "mid_block.attentions.0.proj_in",
		"middle_block.2.out_layers.3":                       "mid_block.resnets.1.conv2",
		"output_blocks.2.2.conv":                            "up_blocks.0.upsamplers.0.conv",
		"output_blocks.5.1.transformer_blocks.0.attn2.to_k": "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k",
		"output_blocks.8.0.out_layers.3":                    "up_blocks.2.resnets.2.conv2",
		"time_embed.0":                                      "time_embedding.linear_1",
		"label_emb.0.2":                                     "add_embedding.linear_2",
		"out.2":                                             "conv_out",
	} {
		require.Equal(t, want, got[orig], orig)
	}
	// Every linear and convolution layer has an original name, once.
	seen := map[string]string{}
	for orig, d := range got {
		require.NotContains(t, seen, d, "%s and %s both map to %s", seen[d], orig, d)
		seen[d] = orig
	}
	for _, m := range mods {
		require.Contains(t, seen, m)
	}
}
