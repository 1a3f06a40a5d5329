package rng

import (
	"fmt"
	"strings"
)

// Generator is a stream of random numbers that matches a seeded
// torch.Generator draw for draw, so that the same seed gives the same
// latents, and so the same image, as diffusers.
//
// Each call continues the stream exactly as the next torch.randn call on the
// same generator would: torch's algorithms depend on the size of each draw,
// so drawing 8 values and then 8 more differs from drawing 16 at once, just
// as it does in PyTorch. A Generator is not safe for concurrent use.
type Generator interface {
	// Randn returns n standard-normal values as torch.randn(shape,
	// generator=g) returns them for any shape of n elements (float32).
	// It panics if n is negative.
	Randn(n int) []float32
	// RandnF16 returns n values as torch.randn(shape, generator=g,
	// dtype=torch.float16) draws them, widened to float32. On the CPU these
	// are not the float32 draws rounded (torch uses 11 random bits per
	// uniform and half-precision arithmetic), so pipelines that draw in
	// float16 need this to reproduce diffusers' latents.
	// It panics if n is negative.
	RandnF16(n int) []float32
	// Seed returns the seed the generator was created with.
	Seed() uint64
	// Name returns the canonical name of the algorithm ("cpu" or "cuda"),
	// as New accepts it.
	Name() string
}

// Canonical generator names.
const (
	// NameCPU is torch.Generator("cpu"): MT19937, what diffusers uses by default.
	NameCPU = "cpu"
	// NameCUDA is torch.Generator("cuda"): Philox4x32-10 as curand runs it,
	// what A1111-style UIs use ("GPU"/"NV" seeds).
	NameCUDA = "cuda"
)

// New returns the generator called name, seeded as manual_seed(seed) seeds
// it. Names are case-insensitive: "cpu" (also "torch-cpu", "mt19937") and
// "cuda" (also "torch-cuda", "gpu", "nv", "philox"); see NewCPU and NewCUDA.
func New(name string, seed uint64) (Generator, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case NameCPU, "torch-cpu", "mt19937":
		return NewCPU(seed), nil
	case NameCUDA, "torch-cuda", "gpu", "nv", "philox":
		return NewCUDA(seed), nil
	}
	return nil, fmt.Errorf("rng: unknown generator %q (want %q or %q)", name, NameCPU, NameCUDA)
}

func checkCount(n int) {
	if n < 0 {
		panic(fmt.Sprintf("rng: negative count %d", n))
	}
}
