package rng

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/x448/float16"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/internal/fixture"
)

// fixtureCase is one entry of the "cases" list in the rng fixtures' metadata.
type fixtureCase struct {
	Key   string `json:"key"`
	Seed  uint64 `json:"seed"`
	Shape []int  `json:"shape"`
}

func (c fixtureCase) numel() int {
	n := 1
	for _, d := range c.Shape {
		n *= d
	}
	return n
}

func openFixture(t *testing.T, path string) (*safetensors.File, map[string]json.RawMessage) {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	var meta map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(f.Metadata()["case"]), &meta), "metadata of %s", path)
	return f, meta
}

func fixtureCases(t *testing.T, name string) (*safetensors.File, []fixtureCase) {
	t.Helper()
	f, meta := openFixture(t, fixture.Path(t, "rng/"+name))
	var cases []fixtureCase
	require.NoError(t, json.Unmarshal(meta["cases"], &cases))
	require.NotEmpty(t, cases)
	return f, cases
}

func tensor(t *testing.T, f *safetensors.File, name string) []float32 {
	t.Helper()
	v, err := f.Float32s(name)
	require.NoError(t, err, name)
	return v
}

// requireBits fails unless got and want are identical float32 bit patterns,
// reporting how many differ and the first few.
func requireBits(t *testing.T, what string, want, got []float32) {
	t.Helper()
	require.Len(t, got, len(want), what)
	var diffs []string
	bad := 0
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			bad++
			if len(diffs) < 5 {
				diffs = append(diffs, fmt.Sprintf("[%d] got %v (%08x) want %v (%08x)",
					i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i])))
			}
		}
	}
	require.Zero(t, bad, "%s: %d of %d values differ: %v", what, bad, len(want), diffs)
}

// requireHalf fails unless got and want are the same float16 values.
func requireHalf(t *testing.T, what string, want, got []float32) {
	t.Helper()
	require.Len(t, got, len(want), what)
	var diffs []string
	bad := 0
	for i := range want {
		w, g := float16.Fromfloat32(want[i]), float16.Fromfloat32(got[i])
		require.Equal(t, want[i], w.Float32(), "%s[%d]: reference %v is not a float16", what, i, want[i])
		if w.Bits() != g.Bits() {
			bad++
			if len(diffs) < 5 {
				diffs = append(diffs, fmt.Sprintf("[%d] got %v (%04x) want %v (%04x)", i, got[i], g.Bits(), want[i], w.Bits()))
			}
		}
	}
	require.Zero(t, bad, "%s: %d of %d float16 values differ: %v", what, bad, len(want), diffs)
}

func TestCPUMatchesTorch(t *testing.T) {
	f, cases := fixtureCases(t, "torch_cpu.safetensors")
	var scalar, vector bool
	for _, c := range cases {
		t.Run(c.Key, func(t *testing.T) {
			n := c.numel()
			scalar = scalar || n < vectorMin
			vector = vector || n >= vectorMin
			g, err := New("cpu", c.Seed)
			require.NoError(t, err)
			requireBits(t, c.Key+".first", tensor(t, f, c.Key+".first"), g.Randn(n))
			second := tensor(t, f, c.Key+".second")
			requireBits(t, c.Key+".second", second, g.Randn(len(second)))
			requireHalf(t, c.Key+".half", tensor(t, f, c.Key+".half"), NewCPU(c.Seed).RandnF16(n))
		})
	}
	require.True(t, scalar && vector, "the fixture should cover both the scalar and the vectorised path")
}

func TestCUDAMatchesTorch(t *testing.T) {
	f, cases := fixtureCases(t, "torch_cuda.safetensors")
	for _, c := range cases {
		t.Run(c.Key, func(t *testing.T) {
			n := c.numel()
			g := NewCUDA(c.Seed)
			requireBits(t, c.Key+".first", tensor(t, f, c.Key+".first"), g.Randn(n))
			require.Equal(t, uint64(4), g.Offset(), "offset after one launch of at most 270336 elements")
			second := tensor(t, f, c.Key+".second")
			requireBits(t, c.Key+".second", second, g.Randn(len(second)))
			require.Equal(t, uint64(8), g.Offset())
			requireHalf(t, c.Key+".half", tensor(t, f, c.Key+".half"), NewCUDA(c.Seed).RandnF16(n))
		})
	}
}

// TestCUDALargeDraws checks draws larger than an H200's grid (wrapping around
// it, with several loop iterations per thread) against torch on an H200; see
// testdata/README.md.
func TestCUDALargeDraws(t *testing.T) {
	f, meta := openFixture(t, "testdata/torch_cuda_large.safetensors")
	type part struct {
		Seed        uint64 `json:"seed"`
		Numel       int    `json:"numel"`
		DType       string `json:"dtype"`
		OffsetAfter uint64 `json:"offset_after"`
	}
	parts := map[string]part{}
	for _, k := range []string{"big", "big_next", "half", "after_half"} {
		var p part
		require.NoError(t, json.Unmarshal(meta[k], &p), k)
		parts[k] = p
	}
	check := func(g *CUDA, name string) {
		p := parts[name]
		var got []float32
		if p.DType == "float16" {
			got = g.RandnF16(p.Numel)
		} else {
			got = g.Randn(p.Numel)
		}
		require.Equal(t, p.OffsetAfter, g.Offset(), "%s: offset", name)
		idx, err := f.Int64s(name + ".index")
		require.NoError(t, err)
		want := tensor(t, f, name+".value")
		require.Len(t, want, len(idx))
		sel := make([]float32, len(idx))
		for i, j := range idx {
			sel[i] = got[j]
		}
		requireBits(t, name, want, sel)
	}
	g := NewCUDA(parts["big"].Seed)
	check(g, "big")
	check(g, "big_next")
	g = NewCUDA(parts["half"].Seed)
	check(g, "half")
	check(g, "after_half")

	// The largest Box-Muller angles: Philox y >= 2^32-128 gives v = float(2π).
	var edge struct {
		Cases []struct {
			Seed  uint64 `json:"seed"`
			Numel int    `json:"numel"`
			Index int    `json:"index"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(meta["edge"], &edge))
	want, wantHalf := tensor(t, f, "edge.value"), tensor(t, f, "edge.half")
	require.Len(t, edge.Cases, len(want))
	for i, c := range edge.Cases {
		requireBits(t, fmt.Sprintf("edge seed %d", c.Seed), want[i:i+1], NewCUDA(c.Seed).Randn(c.Numel)[c.Index:c.Index+1])
		requireHalf(t, fmt.Sprintf("edge half seed %d", c.Seed), wantHalf[i:i+1], NewCUDA(c.Seed).RandnF16(c.Numel)[c.Index:c.Index+1])
	}
}

// TestCUDASineMatchesHardware checks the special-function-unit model against
// the H200's __sincosf for all 2^23 arguments of the first quadrant (the other
// quadrants are the same values with signs and mirroring, and are exercised
// by the torch fixtures): SHA-256 of the hardware's float32 results, as
// little-endian bits, for k = floor(t·2^25) = 0 .. 2^23-1.
func TestCUDASineMatchesHardware(t *testing.T) {
	const (
		hwSin = "57676af4861bf1ab7f9ee4cb0875a4e1abb7725e77fa0016a38c8a233c875ce6"
		hwCos = "793d57f4007fe2e569ad1397edf26baf281ec74ff3cc89a1dd7e4fd5c86d8470"
	)
	hs, hc := sha256.New(), sha256.New()
	var buf [4]byte
	for x := uint32(0); x < mufuQuadrant; x++ {
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(mufuQuarterSine(x)))
		hs.Write(buf[:])
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(mufuQuarterSine(mufuQuadrant-1-x)))
		hc.Write(buf[:])
	}
	require.Equal(t, hwSin, hex.EncodeToString(hs.Sum(nil)), "MUFU.SIN over the first quadrant")
	require.Equal(t, hwCos, hex.EncodeToString(hc.Sum(nil)), "MUFU.COS over the first quadrant")

	// __sincosf at the top of the range, where t reaches 1 - 2^-24 and then 1
	// (H200 results).
	for _, c := range []struct{ v, sin, cos uint32 }{
		{0x40c90fd9, 0xb57b5680, 0x3f800000},
		{0x40c90fda, 0xb516cd80, 0x3f800000},
		{0x40c90fdb, 0xb4491200, 0x3f800000},
		{0x40c90fdc, 0x00000000, 0x3f800000},
	} {
		s, co := cudaSinCos(math.Float32frombits(c.v))
		require.Equal(t, [2]uint32{c.sin, c.cos}, [2]uint32{math.Float32bits(s), math.Float32bits(co)}, "__sincosf(%08x)", c.v)
	}
}

// TestCUDALogfMatchesHardware checks cudaLogf against the H200's logf on
// every 97th float in [2^-33, 1] (the emulation was also checked on every
// float there): a polynomial hash of the results' bits.
func TestCUDALogfMatchesHardware(t *testing.T) {
	const hw = uint64(15698873259536027641)
	var sum uint64
	n := 0
	for b := uint32(0x2f000000); b <= 0x3f800000; b += 97 {
		sum = sum*1000003 + uint64(math.Float32bits(cudaLogf(math.Float32frombits(b))))
		n++
	}
	require.Equal(t, 2853857, n)
	require.Equal(t, hw, sum)
}

// TestHalfMathMargins justifies computing the float16 kernel's logf, sinf and
// cosf with Go's float64 functions: for every input the kernel can see (2048
// uniforms), every float32 within 0.82 ulp of the exact result (glibc's error
// bound for logf; sinf and cosf are tighter) rounds to the same float16, so
// glibc and Go agree after rounding.
func TestHalfMathMargins(t *testing.T) {
	sameHalf := func(what string, exact float64) {
		f := float32(exact)
		ulp := float64(math.Nextafter32(float32(math.Abs(exact)), float32(math.Inf(1))) - float32(math.Abs(exact)))
		// The float32 values nearest the ends of [exact-0.82 ulp, exact+0.82 ulp], inside it.
		lo, hi := float32(exact-0.82*ulp), float32(exact+0.82*ulp)
		if float64(lo) < exact-0.82*ulp {
			lo = math.Nextafter32(lo, float32(math.Inf(1)))
		}
		if float64(hi) > exact+0.82*ulp {
			hi = math.Nextafter32(hi, float32(math.Inf(-1)))
		}
		require.Equal(t, toHalf(f), toHalf(lo), "%s: %v is too close to a float16 rounding boundary", what, exact)
		require.Equal(t, toHalf(f), toHalf(hi), "%s: %v is too close to a float16 rounding boundary", what, exact)
	}
	for k := 0; k < 2048; k++ {
		u := float32(k) / 2048
		u1 := toHalf(1 - u)
		sameHalf(fmt.Sprintf("log(%v)", u1), math.Log(float64(u1)))
		theta := toHalf(float32(2 * math.Pi * float64(u)))
		sameHalf(fmt.Sprintf("cos(%v)", theta), math.Cos(float64(theta)))
		sameHalf(fmt.Sprintf("sin(%v)", theta), math.Sin(float64(theta)))
	}
}

func TestFMA32IsCorrectlyRounded(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	exact := func(a, b, c float32) float32 {
		x := new(big.Float).SetPrec(300).SetFloat64(float64(a))
		x.Mul(x, new(big.Float).SetPrec(300).SetFloat64(float64(b)))
		x.Add(x, new(big.Float).SetPrec(300).SetFloat64(float64(c)))
		f, _ := x.Float32()
		return f
	}
	for i := 0; i < 200000; i++ {
		a := math.Float32frombits(r.Uint32() & 0xbfffffff) // |a| < 2
		b := math.Float32frombits(r.Uint32() & 0xbfffffff)
		// c near -a*b makes the sum cancel and exercises the tie cases.
		c := float32(-float64(a) * float64(b))
		c = math.Float32frombits(math.Float32bits(c) + uint32(r.IntN(5)) - 2)
		if r.IntN(2) == 0 || c != c || math.IsInf(float64(c), 0) {
			c = math.Float32frombits(r.Uint32() & 0xbfffffff)
		}
		require.Equal(t, math.Float32bits(exact(a, b, c)), math.Float32bits(fma32(a, b, c)), "fma32(%v, %v, %v)", a, b, c)
	}
}

func TestCPUSeedUsesLow32Bits(t *testing.T) {
	// at::mt19937 initialises from seed & 0xffffffff (fixture case c8 has
	// seed 2^32+5 and matches torch).
	require.Equal(t, NewCPU(5).Randn(100), NewCPU(1<<32+5).Randn(100))
	require.NotEqual(t, NewCUDA(5).Randn(100), NewCUDA(1<<32+5).Randn(100), "Philox uses the whole seed")
}

func TestCPUScalarCacheCarriesOver(t *testing.T) {
	// Scalar draws come in pairs: after an odd count the second value of the
	// last pair is the next draw's first, as in torch.
	g := NewCPU(42)
	a := g.Randn(3)
	b := g.Randn(1)
	all := NewCPU(42).Randn(4)
	require.Equal(t, all, append(a, b...))
	// The vectorised path neither uses nor clears that value.
	g = NewCPU(42)
	g.Randn(1)
	g.Randn(16)
	require.Equal(t, all[1:2], g.Randn(1), "the cached value survives a vectorised draw")
}

func TestNew(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"cpu", NameCPU}, {"CPU", NameCPU}, {" torch-cpu ", NameCPU}, {"mt19937", NameCPU},
		{"cuda", NameCUDA}, {"GPU", NameCUDA}, {"nv", NameCUDA}, {"philox", NameCUDA}, {"torch-cuda", NameCUDA},
	} {
		g, err := New(c.name, 7)
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, g.Name(), c.name)
		require.Equal(t, uint64(7), g.Seed())
	}
	_, err := New("mps", 1)
	require.ErrorContains(t, err, `unknown generator "mps"`)
	_, err = New("", 1)
	require.Error(t, err)
}

func TestCUDADevice(t *testing.T) {
	for _, d := range []CUDADevice{{0, 2048}, {-1, 2048}, {132, 128}, {132, 0}} {
		_, err := NewCUDAFor(1, d)
		require.Error(t, err, "%+v", d)
	}
	// A draw that fits in both grids is laid out the same; a larger one is not.
	small, err := NewCUDAFor(3, CUDADevice{SMs: 1, MaxThreadsPerSM: 256})
	require.NoError(t, err)
	require.Equal(t, NewCUDA(3).Randn(256), small.Randn(256))
	require.Equal(t, uint64(4), small.Offset())
	small, err = NewCUDAFor(3, CUDADevice{SMs: 1, MaxThreadsPerSM: 256})
	require.NoError(t, err)
	a, b := NewCUDA(3).Randn(1000), small.Randn(1000)
	require.Equal(t, a[:256], b[:256], "thread i's first value is element i in both layouts")
	require.NotEqual(t, a[256:], b[256:])
	// With a 256-thread grid, 1000 elements take one iteration of four values
	// per thread; 1025 take two, and the offset grows by 4 per iteration.
	require.Equal(t, uint64(4), small.Offset())
	small.Randn(1025)
	require.Equal(t, uint64(12), small.Offset())
}

func TestZeroAndNegativeCounts(t *testing.T) {
	for _, g := range []Generator{NewCPU(1), NewCUDA(1)} {
		require.Empty(t, g.Randn(0))
		require.Empty(t, g.RandnF16(0))
		require.Panics(t, func() { g.Randn(-1) })
		require.Panics(t, func() { g.RandnF16(-1) })
	}
	g := NewCUDA(1)
	g.Randn(0)
	require.Zero(t, g.Offset(), "an empty draw launches nothing")
	// An empty CPU draw consumes nothing either.
	c := NewCPU(1)
	c.Randn(0)
	require.Equal(t, NewCPU(1).Randn(20), c.Randn(20))
}

func BenchmarkCPURandn(b *testing.B) {
	g := NewCPU(0)
	b.SetBytes(4 * 4 * 128 * 128)
	for b.Loop() {
		g.Randn(4 * 128 * 128)
	}
}

func BenchmarkCUDARandn(b *testing.B) {
	g := NewCUDA(0)
	b.SetBytes(4 * 4 * 128 * 128)
	for b.Loop() {
		g.Randn(4 * 128 * 128)
	}
}
