package rng

import (
	"fmt"
	"math"
)

// CUDADevice is what the layout of torch's CUDA random kernels depends on:
// the launch grid is capped at SMs × (MaxThreadsPerSM / 256) blocks of 256
// threads, and a draw larger than the grid wraps around it, so which random
// numbers land where in a draw of more than that many elements (270336 on an
// H100/H200) depends on the GPU. Smaller draws are the same on every GPU.
type CUDADevice struct {
	// SMs is the multiprocessor count (cudaDeviceProp::multiProcessorCount).
	SMs int
	// MaxThreadsPerSM is cudaDeviceProp::maxThreadsPerMultiProcessor.
	MaxThreadsPerSM int
}

// HopperDevice returns the properties of an H100 or H200 (132 SMs, 2048
// threads each), the GPUs the reference fixtures were made on and NewCUDA's
// default. Others, for comparison: A100 108/2048, RTX 4090 128/1536,
// RTX 3090 82/1536, L4 58/1536, T4 40/1024.
func HopperDevice() CUDADevice { return CUDADevice{SMs: 132, MaxThreadsPerSM: 2048} }

// Launch geometry of ATen's distribution_nullary_kernel
// (aten/src/ATen/native/cuda/DistributionTemplates.h).
const (
	cudaBlockSize = 256
	// cudaUnroll is the number of values one curand_normal4 call yields
	// (curand4_engine_calls), which is also the number of 32-bit Philox
	// outputs a thread consumes per loop iteration.
	cudaUnroll = 4
)

// CUDA reproduces torch.Generator("cuda") and torch.randn on an NVIDIA GPU:
// Philox4x32-10 keyed by the seed, with torch's offset bookkeeping, curand's
// Box-Muller transform in float32 with the GPU's own logf and __sincosf
// arithmetic, and the element layout of ATen's grid-stride kernel. It is CPU
// code: no GPU is needed.
type CUDA struct {
	seed   uint64
	offset uint64 // philox_offset_per_thread, always a multiple of 4
	dev    CUDADevice
}

// NewCUDA returns torch.Generator("cuda").manual_seed(seed) on an H100/H200
// (see CUDADevice for when the GPU matters).
func NewCUDA(seed uint64) *CUDA {
	return &CUDA{seed: seed, dev: HopperDevice()}
}

// NewCUDAFor returns torch.Generator("cuda").manual_seed(seed) as it behaves
// on a GPU with the given properties.
func NewCUDAFor(seed uint64, dev CUDADevice) (*CUDA, error) {
	if dev.SMs <= 0 || dev.MaxThreadsPerSM < cudaBlockSize {
		return nil, fmt.Errorf("rng: invalid CUDA device %d SMs × %d threads (need SMs > 0 and at least %d threads per SM)",
			dev.SMs, dev.MaxThreadsPerSM, cudaBlockSize)
	}
	return &CUDA{seed: seed, dev: dev}, nil
}

// Seed returns the seed the generator was created with.
func (g *CUDA) Seed() uint64 { return g.seed }

// Name returns NameCUDA.
func (g *CUDA) Name() string { return NameCUDA }

// Device returns the GPU properties the generator lays draws out for.
func (g *CUDA) Device() CUDADevice { return g.dev }

// Offset returns the Philox offset, as torch's Generator.get_offset() does:
// it grows by a multiple of 4 with every draw.
func (g *CUDA) Offset() uint64 { return g.offset }

// Randn draws n float32 standard normals as torch.randn does on the GPU.
func (g *CUDA) Randn(n int) []float32 {
	checkCount(n)
	out := make([]float32, n)
	g.draw(n, func(i int, v float32) { out[i] = v + 0 }) // transform: v*std + mean
	return out
}

// RandnF16 draws n float16 standard normals as torch.randn(...,
// dtype=torch.float16) does on the GPU, widened to float32: the same float
// values as Randn, rounded to half.
func (g *CUDA) RandnF16(n int) []float32 {
	checkCount(n)
	out := make([]float32, n)
	g.draw(n, func(i int, v float32) { out[i] = toHalf(v + 0) })
	return out
}

// draw runs distribution_elementwise_grid_stride_kernel for n elements and
// passes each element's value to store. Thread idx of a grid of T threads
// seeds curand with (seed, subsequence idx, offset) and, on its k-th loop
// iteration, turns one Philox block into four normals that go to elements
// k·4T + idx, + T, + 2T and + 3T.
func (g *CUDA) draw(n int, store func(i int, v float32)) {
	if n == 0 {
		return // torch launches nothing and leaves the offset alone
	}
	blocks := (n + cudaBlockSize - 1) / cudaBlockSize
	maxBlocks := g.dev.SMs * (g.dev.MaxThreadsPerSM / cudaBlockSize)
	blocks = min(blocks, maxBlocks)
	threads := blocks * cudaBlockSize
	perIter := threads * cudaUnroll
	iters := (n-1)/perIter + 1
	base := g.offset / 4 // curand's skipahead(offset): offset/4 Philox blocks
	g.offset += uint64(iters) * cudaUnroll

	key := [2]uint32{uint32(g.seed), uint32(g.seed >> 32)}
	for it := 0; it < iters; it++ {
		ctrLo := base + uint64(it)
		for idx := 0; idx < threads; idx++ {
			first := it*perIter + idx
			if first >= n {
				break
			}
			r := philox4x32([4]uint32{uint32(ctrLo), uint32(ctrLo >> 32), uint32(idx), 0}, key)
			s0, c0 := boxMuller(r[0], r[1])
			store(first, s0)
			if i := first + threads; i < n {
				store(i, c0)
			}
			if i := first + 2*threads; i < n {
				s1, c1 := boxMuller(r[2], r[3])
				store(i, s1)
				if i += threads; i < n {
					store(i, c1)
				}
			}
		}
	}
}

// Constants of curand's _curand_box_muller, as float32 bit patterns.
var (
	curand2Pow32Inv    = math.Float32frombits(0x2f800000) // 2^-32
	curand2Pow32Inv2Pi = math.Float32frombits(0x30c90fdb) // float(2^-32 · 2π)
)

// boxMuller is curand's _curand_box_muller(x, y) as nvcc compiles it for
// the GPU: u = x·2^-32 + 2^-33 and v = y·(2π·2^-32) + half that, each one
// fused multiply-add; s = sqrtf(-2 logf(u)) (IEEE-rounded sqrt, libdevice
// logf); and (sin v, cos v) from __sincosf, each times s.
func boxMuller(x, y uint32) (sin, cos float32) {
	u := fma32(float32(x), curand2Pow32Inv, curand2Pow32Inv/2)
	v := fma32(float32(y), curand2Pow32Inv2Pi, curand2Pow32Inv2Pi/2)
	s := float32(math.Sqrt(float64(float32(-2 * cudaLogf(u)))))
	sv, cv := cudaSinCos(v)
	return float32(sv * s), float32(cv * s)
}

// cudaLogf is CUDA's logf (libdevice __nv_logf, as nvcc inlines it for
// sm_90) for u in (0, 1], the only arguments Box-Muller passes: the argument
// is split as 2^e·m with m in [2/3, 4/3), log(m) comes from a degree-9
// polynomial in f = m-1 evaluated with fused multiply-adds, and e·log 2 is
// added last. It was checked against the GPU for every float in
// [2^-33, 1].
func cudaLogf(u float32) float32 {
	adj := float32(0)
	if u < minNormal32 {
		u = float32(u * 0x1p23)
		adj = -23
	}
	if u == 0 {
		return float32(math.Inf(-1))
	}
	b := math.Float32bits(u)
	eb := (b - 0x3f2aaaab) & 0xff800000
	f := math.Float32frombits(b-eb) - 1
	p := fma32(f, -math.Float32frombits(0x3e055027), 0.14084610342979431152)
	p = fma32(f, p, -0.12148627638816833496)
	p = fma32(f, p, 0.13980610668659210205)
	p = fma32(f, p, -0.16684235632419586182)
	p = fma32(f, p, 0.20012299716472625732)
	p = fma32(f, p, -0.24999669194221496582)
	p = fma32(f, p, 0.33333182334899902344)
	p = fma32(f, p, -0.5)
	p = float32(f * p)
	e := fma32(float32(int32(eb)), 0x1p-23, adj)
	return fma32(e, 0.69314718246459960938, fma32(f, p, f))
}
