package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/sdgo/sdgo/tensor"
	"github.com/sdgo/sdgo/tensor/tensortest"
	"github.com/stretchr/testify/require"
)

// mapParams is a Params over host slices, for tests.
type mapParams struct {
	cpu *tensor.CPU
	v   map[string][]float32
	s   map[string][]int
}

func (m mapParams) Tensor(name string) (*tensor.Tensor, error) {
	v, ok := m.v[name]
	if !ok {
		return nil, fmt.Errorf("no parameter %s", name)
	}
	return tensor.FromFloat32(m.cpu, v, m.s[name]...)
}

func (m mapParams) add(rng *rand.Rand, name string, shape ...int) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * 0.3)
	}
	m.v[name], m.s[name] = v, shape
}

func TestGetNamesTheParameter(t *testing.T) {
	p := mapParams{tensor.NewCPU(), map[string][]float32{}, map[string][]int{}}
	p.add(rand.New(rand.NewPCG(1, 1)), "blocks.0.proj.weight", 3, 4)
	_, err := LoadLinear(Sub(Sub(p, "blocks.0"), "proj"), 4, 5, false)
	require.ErrorContains(t, err, "blocks.0.proj.weight: want [5 4], file has [3 4]")
	_, err = LoadLinear(Sub(p, "blocks.1.proj"), 4, 3, false)
	require.ErrorContains(t, err, "no parameter blocks.1.proj.weight")
}

// Attention against the direct formula: projections, heads, softmax, output.
func TestAttentionMatchesFormula(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	cpu := tensor.NewCPU()
	const b, l, s, dim, ctxDim, heads = 2, 5, 7, 12, 10, 3
	for _, causal := range []bool{false, true} {
		for _, cross := range []bool{false, true} {
			if causal && cross {
				continue
			}
			kv := dim
			if cross {
				kv = ctxDim
			}
			p := mapParams{cpu, map[string][]float32{}, map[string][]int{}}
			for _, n := range []string{"q", "k", "v"} {
				in := kv
				if n == "q" {
					in = dim
				}
				p.add(rng, n+".weight", dim, in)
				p.add(rng, n+".bias", dim)
			}
			p.add(rng, "o.weight", dim, dim)
			p.add(rng, "o.bias", dim)
			a, err := LoadAttention(p, AttentionNames{Q: "q", K: "k", V: "v", Out: "o"}, dim, kv, heads, true)
			require.NoError(t, err)
			a.Causal = causal
			xs := tensortest.Rand(rng, b*l*dim)
			x, _ := tensor.FromFloat32(cpu, xs, b, l, dim)
			var ctx *tensor.Tensor
			cs, sl := xs, l
			if cross {
				cs, sl = tensortest.Rand(rng, b*s*ctxDim), s
				ctx, _ = tensor.FromFloat32(cpu, cs, b, s, ctxDim)
			}
			out, err := a.Forward(x, ctx)
			require.NoError(t, err)
			got, _ := out.Float32s()

			q := tensortest.Linear(xs, b*l, dim, p.v["q.weight"], dim, p.v["q.bias"])
			k := tensortest.Linear(cs, b*sl, kv, p.v["k.weight"], dim, p.v["k.bias"])
			v := tensortest.Linear(cs, b*sl, kv, p.v["v.weight"], dim, p.v["v.bias"])
			hd := dim / heads
			split := func(x []float32, n int) []float32 { // [b, n, h, d] -> [b, h, n, d]
				o := make([]float32, len(x))
				for bi := range b {
					for i := range n {
						for h := range heads {
							copy(o[((bi*heads+h)*n+i)*hd:][:hd], x[((bi*n+i)*heads+h)*hd:][:hd])
						}
					}
				}
				return o
			}
			var att []float32
			if causal {
				att = tensortest.CausalAttention(split(q, l), split(k, sl), split(v, sl), b, heads, l, sl, hd, hd, 1/math.Sqrt(float64(hd)))
			} else {
				att = tensortest.Attention(split(q, l), split(k, sl), split(v, sl), b, heads, l, sl, hd, hd, 1/math.Sqrt(float64(hd)))
			}
			merged := make([]float32, len(att))
			for bi := range b {
				for h := range heads {
					for i := range l {
						copy(merged[((bi*l+i)*heads+h)*hd:][:hd], att[((bi*heads+h)*l+i)*hd:][:hd])
					}
				}
			}
			want := tensortest.Linear(merged, b*l, dim, p.v["o.weight"], dim, p.v["o.bias"])
			tensortest.RequireClose(t, want, got, 1e-5, 1e-5)
		}
	}
}
