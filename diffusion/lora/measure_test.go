package lora

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sdgo/sdgo/diffusion/model"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/unet"
	"github.com/sdgo/sdgo/internal/bench"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
	"github.com/x448/float16"
)

// attnProj matches the attention projections of the UNet's transformers.
var attnProj = regexp.MustCompile(`\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)\.weight$`)

// syntheticLoRA makes a LoRA of the given rank over the weights: kohya keys
// (with the UNet's original names, as SDXL LoRAs have them) or diffusers keys,
// F16 factors with values of a trained LoRA's size.
func syntheticLoRA(t testing.TB, name string, w *Weights, cfg unet.Config, rank int, kohya bool, seed uint64) *LoRA {
	rng := rand.New(rand.NewPCG(seed, 7))
	var mods []string
	for _, n := range w.Names() {
		mods = append(mods, strings.TrimSuffix(n, ".weight"))
	}
	orig := map[string]string{}
	for o, d := range model.UNetOriginalModules(cfg, mods) {
		orig[d] = o
	}
	f16 := func(n int, s float32) []uint16 {
		v := make([]uint16, n)
		for i := range v {
			v[i] = float16.Fromfloat32((rng.Float32()*2 - 1) * s).Bits()
		}
		return v
	}
	var ts []safetensors.Tensor
	for _, n := range w.Names() {
		if !attnProj.MatchString(n) {
			continue
		}
		s := w.Tensor(n).Shape()
		out, in := s[0], s[1]
		mod := strings.TrimSuffix(n, ".weight")
		down, up := "unet."+mod+".lora.down.weight", "unet."+mod+".lora.up.weight"
		if kohya {
			key := "lora_unet_" + strings.ReplaceAll(orig[mod], ".", "_")
			down, up = key+".lora_down.weight", key+".lora_up.weight"
			ts = append(ts, safetensors.F32Tensor(key+".alpha", nil, []float32{float32(rank) / 2}))
		}
		ts = append(ts, safetensors.U16Tensor(down, safetensors.F16, []int{rank, in}, f16(rank*in, 0.02)),
			safetensors.U16Tensor(up, safetensors.F16, []int{out, rank}, f16(out*rank, 0.02)))
	}
	var buf bytes.Buffer
	require.NoError(t, safetensors.Write(&buf, ts, nil))
	f, err := safetensors.Parse(name, buf.Bytes())
	require.NoError(t, err)
	l, err := Parse(name, f)
	require.NoError(t, err)
	return l
}

func heapMB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// Measured once on a 16-core Xeon (CPU backend, latent 128 = 1024x1024
// pixels): model 5417 MB; LoRAs 560+560 modules, 58.1M values; merge 1.7 s
// for 955M changed parameters in either mode; merged weights 1822 MB (F16)
// or 3644 MB (float32); UNet call 32.9 s without LoRA, 33.8 s (F16) and
// 33.2 s (float32) merged; the run-time low-rank products alone 1.46 s
// (4.5%) per call; peak RSS 14.6 GB.
//
// Memory and time of merging two LoRAs (rank 8, kohya with SGM names; rank
// 32, diffusers) over every attention projection of a full-size SDXL UNet
// with synthetic F16 weights, in the weights' dtype and in float32, and what
// the merged weights cost a UNet call (against the time of the low-rank
// products an unmerged, run-time LoRA would add to it). It takes minutes and
// about 12 GB: run it with SDGO_LORA_MEASURE=1 (SDGO_LORA_MEASURE_LATENT sets
// the latent size of the timed UNet calls, 64 by default).
func TestMeasureSDXL(t *testing.T) {
	if os.Getenv("SDGO_LORA_MEASURE") == "" {
		t.Skip("set SDGO_LORA_MEASURE=1 to measure merging two LoRAs into full-size SDXL")
	}
	latent := 64
	if v := os.Getenv("SDGO_LORA_MEASURE_LATENT"); v != "" {
		fmt.Sscan(v, &latent)
	}
	cpu := tensor.NewCPU()
	cfg, err := bench.UNetConfig(bench.SDXL)
	require.NoError(t, err)
	h0 := heapMB()
	start := time.Now()
	params, w := Record(&bench.Synthetic{Backend: cpu, DType: tensor.F16, Seed: 1})
	base, err := unet.Load(params, cfg, unet.Options{})
	require.NoError(t, err)
	defer w.Release()
	hModel := heapMB()
	t.Logf("SDXL UNet, synthetic F16: %d tensors, %.0f MB, made in %v", len(w.Names()), hModel-h0, time.Since(start).Round(time.Millisecond))

	tg := &Target{Family: model.SDXL, UNet: cfg, Components: map[string]*Weights{UNet: w}}
	a := syntheticLoRA(t, "rank8.kohya", w, cfg, 8, true, 1)
	b := syntheticLoRA(t, "rank32.diffusers", w, cfg, 32, false, 2)
	var lp int
	for _, l := range []*LoRA{a, b} {
		for _, m := range l.Modules {
			lp += m.Params()
		}
	}
	hLoRA := heapMB()
	t.Logf("LoRAs: %d + %d modules, %.1fM factor values, %.0f MB as float32", len(a.Modules), len(b.Modules), float64(lp)/1e6, hLoRA-hModel)
	ads := []Adapter{{LoRA: a, Scale: 0.8}, {LoRA: b, Scale: 0.5}}

	in, err := bench.UNetInput(cpu, cfg, 2, latent)
	require.NoError(t, err)
	step := func(m *unet.Model, calls int) time.Duration {
		best := time.Duration(1 << 62)
		for range calls {
			s := time.Now()
			out, err := m.Forward(in, nil)
			require.NoError(t, err)
			out.Release()
			best = min(best, time.Since(s))
		}
		return best
	}
	tBase := step(base, 2) // the first call warms up
	t.Logf("UNet call (batch 2, latent %dx%d), no LoRA: %v", latent, latent, tBase.Round(time.Millisecond))

	for _, opts := range []Options{{}, {Float32: true}} {
		s := time.Now()
		mg, err := Merge(tg, ads, opts)
		require.NoError(t, err)
		tMerge := time.Since(s)
		s = time.Now()
		u, err := unet.Load(tg.Params(UNet, mg), cfg, unet.Options{})
		require.NoError(t, err)
		tBuild := time.Since(s)
		st := mg.Stats()
		tStep := step(u, 1)
		t.Logf("merge (float32 %v): %d modules into %d weights (%.0fM params): merged in %v, network rebuilt in %v; merged weights %.0f MB; UNet call %v (no LoRA %v)",
			opts.Float32, st.Modules, st.Weights, float64(st.Params)/1e6, tMerge.Round(time.Millisecond), tBuild.Round(time.Microsecond),
			float64(st.Bytes)/(1<<20), tStep.Round(time.Millisecond), tBase.Round(time.Millisecond))
		u.Release()
		mg.Release()
	}

	// What run-time application would add to each call: for every projection,
	// x·downᵀ·upᵀ for both LoRAs at the call's token counts.
	var lowRank time.Duration
	tokens := map[int]int{} // channels -> tokens of the transformer at that width
	for lv, ch := range cfg.BlockOutChannels {
		tokens[ch] = (latent >> lv) * (latent >> lv)
	}
	for _, l := range []*LoRA{a, b} {
		for _, m := range l.Modules {
			n := 2 * 77 // cross-attention keys and values read the text
			if !strings.Contains(m.Key, "attn2_to_k") && !strings.Contains(m.Key, "attn2_to_v") && !strings.Contains(m.Key, "attn2.to_k") && !strings.Contains(m.Key, "attn2.to_v") {
				n = 2 * tokens[m.Out()]
			}
			x, err := tensor.Full(cpu, tensor.F32, 0.1, n, m.In())
			require.NoError(t, err)
			up, down, err := m.factors(cpu)
			require.NoError(t, err)
			s := time.Now()
			h, err := tensor.Linear(x, down, nil)
			require.NoError(t, err)
			y, err := tensor.Linear(h, up, nil)
			require.NoError(t, err)
			lowRank += time.Since(s)
			for _, r := range []*tensor.Tensor{x, up, down, h, y} {
				r.Release()
			}
		}
	}
	t.Logf("run-time application instead: the low-rank products alone add %v to each UNet call (%.1f%%), plus the adds, with no merged copy", lowRank.Round(time.Millisecond), 100*lowRank.Seconds()/tBase.Seconds())
	t.Logf("peak RSS %.0f MB", bench.PeakRSSMB())
	base.Release()
}
