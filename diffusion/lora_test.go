package diffusion

import (
	"context"
	"fmt"
	"iter"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/diffusion/lora"
	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
	"github.com/sdgo/sdgo/internal/pyjson"
	"github.com/sdgo/sdgo/nn"
	"github.com/stretchr/testify/require"
)

// loraSpec is an entry of a lora case's "loras" metadata.
type loraSpec struct {
	File  string  `json:"file"`
	Scale float64 `json:"scale"`
}

func loraCases(t *testing.T) []string {
	paths, err := filepath.Glob(filepath.Join(fixture.Dir(), "ref", "*.lora.*.safetensors"))
	require.NoError(t, err)
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".safetensors"))
	}
	slices.Sort(names)
	require.Len(t, names, 6, "the README lists sd15 and sdxl cases a, b and a+b")
	return names
}

// nudged is torch's CPU generator with every value of the first draw moved by
// one ulp (alternately up and down): a run with it measures how much float32
// rounding at the start moves the result.
type nudged struct {
	g     Generator
	drawn bool
}

func (n *nudged) Randn(k int) []float32 {
	v := n.g.Randn(k)
	if !n.drawn {
		n.drawn = true
		for i := range v {
			v[i] = math.Nextafter32(v[i], float32(math.Inf(1-2*(i%2))))
		}
	}
	return v
}

// openLoraCase reads a lora case's metadata and opens its LoRA files.
func openLoraCase(t *testing.T, ref *safetensors.File) (pipelineCase, []lora.Adapter) {
	var c pipelineCase
	require.NoError(t, pyjson.Unmarshal([]byte(ref.Metadata()["case"]), &c))
	var specs []loraSpec
	require.NoError(t, pyjson.Unmarshal(c.Loras, &specs))
	require.NotEmpty(t, specs)
	var adapters []lora.Adapter
	for _, s := range specs {
		l, err := lora.Open(fixture.Path(t, s.File))
		require.NoError(t, err)
		adapters = append(adapters, lora.Adapter{LoRA: l, Scale: s.Scale})
	}
	return c, adapters
}

// checkLoraRun generates a lora case with p (whose LoRAs are attached) and
// compares the latents after every step and the 8-bit image with the
// reference, within the tolerances of TestPipelinesMatchDiffusers: 1e-4
// relative or four times the change a one-ulp nudge of the initial noise makes.
func checkLoraRun(t *testing.T, p *Pipeline, c pipelineCase, ref *safetensors.File) {
	wobble := map[int][]float32{}
	g, err := NewGenerator("cpu", c.Seed)
	require.NoError(t, err)
	nreq := requestFor(t, c, &nudged{g: g})
	nreq.Progress = func(pr Progress) {
		v, err := pr.Latents.Float32s()
		require.NoError(t, err)
		wobble[pr.Step-1] = v
	}
	_, err = p.Generate(context.Background(), nreq)
	require.NoError(t, err)

	g, err = NewGenerator("cpu", c.Seed)
	require.NoError(t, err)
	req := requestFor(t, c, g)
	req.Progress = func(pr Progress) {
		want, err := ref.Float32s(fmt.Sprintf("latents.%d", pr.Step-1))
		require.NoError(t, err)
		got, err := pr.Latents.Float32s()
		require.NoError(t, err)
		worst, scale := closeTo(want, got)
		sensitivity, _ := closeTo(got, wobble[pr.Step-1])
		tol := math.Max(1e-4*scale, 4*sensitivity)
		t.Logf("step %d: max abs error %.3g, rounding sensitivity %.3g, tolerance %.3g", pr.Step-1, worst, sensitivity, tol)
		require.LessOrEqual(t, worst, tol, "latents after step %d: max abs error %g (rounding sensitivity %g)", pr.Step-1, worst, sensitivity)
	}
	res, err := p.Generate(context.Background(), req)
	require.NoError(t, err)
	want, err := ref.Int64s("image_u8")
	require.NoError(t, err)
	img := res.Images[0]
	h, w := img.Rect.Dy(), img.Rect.Dx()
	require.Len(t, want, 3*h*w)
	off1, worst := 0, 0
	for ch := range 3 {
		for i := range h * w {
			d := int(want[ch*h*w+i]) - int(img.Pix[4*i+ch])
			d = max(d, -d)
			worst = max(worst, d)
			if d > 1 {
				off1++
			}
		}
	}
	t.Logf("image: worst %d levels, %d values off by more than 1", worst, off1)
	require.LessOrEqual(t, worst, 2, "an 8-bit value differs by %d", worst)
	require.LessOrEqual(t, off1, 8, "%d values differ by more than one level", off1)
}

// Every ref/*.lora.* case through the library, by default: the LoRAs given
// to Load, applied at run time over the model's F16 UNet weights.
func TestLoraPipelinesMatchDiffusers(t *testing.T) {
	for _, name := range loraCases(t) {
		t.Run(name, func(t *testing.T) {
			ref, err := safetensors.Open(fixture.Path(t, "ref/"+name+".safetensors"))
			require.NoError(t, err)
			defer ref.Close()
			c, adapters := openLoraCase(t, ref)
			p, err := Load(context.Background(), fixture.Path(t, c.Model), Options{LoRAs: adapters})
			require.NoError(t, err)
			defer p.Close()
			checkLoraRun(t, p, c, ref)
		})
	}
}

// latentsOf generates c's request with torch's CPU generator and returns the
// final latents.
func latentsOf(t *testing.T, p *Pipeline, c pipelineCase) []float32 {
	g, err := NewGenerator("cpu", c.Seed)
	require.NoError(t, err)
	res, err := p.Generate(context.Background(), requestFor(t, c, g))
	require.NoError(t, err)
	return res.Latents
}

// adaptedLayers counts the pipeline's layers with adapters attached.
func adaptedLayers(p *Pipeline) int {
	n := 0
	count := func(layers iter.Seq2[string, nn.Adaptable]) {
		for _, l := range layers {
			switch l := l.(type) {
			case *nn.Linear:
				n += min(len(l.Adapters), 1)
			case *nn.Conv2d:
				n += min(len(l.Adapters), 1)
			}
		}
	}
	count(p.unet.Layers())
	for _, t := range p.texts {
		count(t.Layers())
	}
	return n
}

// Replacing and removing LoRAs: the networks come back to the model's own
// results bit for bit, a replaced set gives what loading with the new set
// gives, and a set that fails its checks leaves the pipeline as it was,
// nothing half attached.
func TestApplyAndRemoveLoRAs(t *testing.T) {
	ref, err := safetensors.Open(fixture.Path(t, "ref/sd15.lora.a+b.safetensors"))
	require.NoError(t, err)
	defer ref.Close()
	c, ads := openLoraCase(t, ref)
	a, b := ads[0], ads[1]

	p, err := Load(context.Background(), fixture.Path(t, c.Model), Options{})
	require.NoError(t, err)
	defer p.Close()
	plain := latentsOf(t, p, c)
	require.Empty(t, p.LoRAs())
	require.Zero(t, p.LoRAStats())
	require.Zero(t, adaptedLayers(p))

	require.NoError(t, p.ApplyLoRAs(a))
	withA := latentsOf(t, p, c)
	require.NotEqual(t, plain, withA)
	require.Equal(t, []lora.Adapter{a}, p.LoRAs())
	st := p.LoRAStats()
	require.Equal(t, len(a.LoRA.Modules), st.Modules)
	require.Equal(t, st.Layers, adaptedLayers(p))
	// Each module is one layer's adapter; its factors are float32, nothing
	// else is allocated for them (no weight is copied).
	require.Equal(t, len(a.LoRA.Modules), st.Layers)
	params := int64(0)
	for _, m := range a.LoRA.Modules {
		params += int64(m.Params())
	}
	require.Equal(t, params, st.Params)
	require.Equal(t, 4*params, st.Bytes)

	// A set with a LoRA for another family is refused; nothing changes.
	xl, err := lora.Open(fixture.Path(t, "lora/sdxl.b.kohya.safetensors"))
	require.NoError(t, err)
	set := p.loras
	err = p.ApplyLoRAs(b, lora.Adapter{LoRA: xl, Scale: 1})
	require.ErrorContains(t, err, "sdxl.b.kohya.safetensors")
	require.ErrorContains(t, err, "SDXL")
	require.Equal(t, []lora.Adapter{a}, p.LoRAs())
	require.Same(t, set, p.loras)
	require.Equal(t, st.Layers, adaptedLayers(p))
	require.Equal(t, withA, latentsOf(t, p, c), "a refused set changes nothing")
	err = p.ApplyLoRAs(lora.Adapter{LoRA: b.LoRA, Scale: math.NaN()})
	require.ErrorContains(t, err, "not a finite number")
	require.Equal(t, withA, latentsOf(t, p, c))

	// Asking for the set attached now does nothing.
	require.NoError(t, p.ApplyLoRAs(a))
	require.Same(t, set, p.loras)

	// Replacing a by b is loading with b.
	require.NoError(t, p.ApplyLoRAs(b))
	require.NotSame(t, set, p.loras)
	require.False(t, set.Attached())
	require.Equal(t, p.LoRAStats().Layers, adaptedLayers(p))
	q, err := Load(context.Background(), fixture.Path(t, c.Model), Options{LoRAs: []lora.Adapter{b}})
	require.NoError(t, err)
	defer q.Close()
	require.Equal(t, latentsOf(t, q, c), latentsOf(t, p, c))

	// Removing them restores the model exactly.
	require.NoError(t, p.RemoveLoRAs())
	require.Empty(t, p.LoRAs())
	require.Zero(t, adaptedLayers(p))
	require.Equal(t, plain, latentsOf(t, p, c))

	// Load refuses a bad set.
	_, err = Load(context.Background(), fixture.Path(t, c.Model), Options{LoRAs: []lora.Adapter{{LoRA: xl, Scale: 1}}})
	require.ErrorContains(t, err, "sdxl.b.kohya.safetensors")
}
