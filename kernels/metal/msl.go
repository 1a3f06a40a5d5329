package metal

import (
	"embed"
	"io/fs"
	"slices"
	"strings"
)

// The Metal Shading Language sources, compiled at run time (Device.Open) as one
// library: common.metal first (the helpers the others use), then the rest in
// name order. They are embedded on every system so that msl_test.go checks them
// everywhere.
//
//go:embed *.metal
var mslFS embed.FS

// languageVersion is the MTLLanguageVersion the library is compiled with:
// MTLLanguageVersion3_0, (3<<16)|0. It is set explicitly because a binary built
// without cgo carries no SDK version, and Metal would otherwise compile for an
// old MSL that lacks what the kernels use.
const languageVersion = 3<<16 | 0

// mslFiles returns the names of the embedded sources in compilation order.
func mslFiles() []string {
	names, _ := fs.Glob(mslFS, "*.metal")
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "common.metal":
			return -1
		case b == "common.metal":
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}

// mslSource returns the library's source: the embedded files in compilation
// order, each introduced by a #line directive so that compiler messages name
// the file and line.
func mslSource() string {
	var sb strings.Builder
	for _, f := range mslFiles() {
		b, _ := mslFS.ReadFile(f)
		sb.WriteString("#line 1 \"" + f + "\"\n")
		sb.Write(b)
		sb.WriteString("\n")
	}
	return sb.String()
}

// bufferArg is one buffer argument of a kernel: its [[buffer(n)]] index and its
// type as the MSL source spells it, with single spaces ("device const char*",
// "constant GemmParams&").
type bufferArg struct {
	index int
	typ   string
}

// kernelSpec is what the Go side knows of a kernel: its name, its buffer
// arguments in index order (the last one the constant parameter struct), and
// the number of 4-byte words of that struct (int and float fields only), which
// the parameters the Go side encodes must fill exactly.
type kernelSpec struct {
	name   string
	args   []bufferArg
	params string
	words  int
}

// buffers returns the number of buffer arguments before the parameter struct.
func (k *kernelSpec) buffers() int { return len(k.args) - 1 }

// maxRank is MAX_RANK in elementwise.metal: the most dimensions a strided copy
// or a broadcasting binary operation takes after coalescing.
const maxRank = 8

// Thread counts the Go side dispatches with and the kernels assume.
const (
	threads1D   = 256 // one-dimensional kernels
	rowThreads  = 256 // the row reductions of norm.metal
	gemmThreads = 128 // GEMM_THREADS in gemm.metal
	gemmTile    = 32  // TILE_M and TILE_N in gemm.metal
	attnRows    = 4   // ATTN_ROWS in attention.metal: query rows per threadgroup
	attnMaxD    = 256 // 32·ATTN_D_REGS
	attnMaxDv   = 512 // 32·ATTN_DV_REGS
)

func args(types ...string) []bufferArg {
	a := make([]bufferArg, len(types))
	for i, t := range types {
		a[i] = bufferArg{i, t}
	}
	return a
}

const (
	devF32  = "device float*"
	cdevF32 = "device const float*"
	devAny  = "device char*"
	cdevAny = "device const char*"
)

func spec(name, params string, words int, buffers ...string) kernelSpec {
	return kernelSpec{name: name, args: args(append(buffers, "constant "+params+"&")...), params: params, words: words}
}

// kernels is the table of every kernel the Go side dispatches; msl_test.go
// checks it against the sources.
var kernels = []kernelSpec{
	spec("fill", "FillParams", 4, devAny),
	spec("copy_strided", "CopyParams", 6+3*maxRank, devAny, cdevAny),
	spec("unary", "UnaryParams", 4, devF32, cdevF32),
	spec("binary", "BinaryParams", 8+3*maxRank, devF32, cdevAny, cdevAny),
	spec("affine", "AffineParams", 5, devF32, cdevF32),
	spec("clamp_f32", "ClampParams", 5, devF32, cdevF32),
	spec("geglu", "GegluParams", 4, devF32, cdevF32),
	spec("resize_nearest", "ResizeParams", 9, devF32, cdevF32),
	spec("embedding", "EmbeddingParams", 7, devF32, cdevAny, "device const int*"),
	spec("timestep_embedding", "TimestepParams", 5, devF32, cdevF32, cdevF32),
	spec("softmax", "RowParams", 4, devF32, cdevF32),
	spec("layer_norm", "LayerNormParams", 11, devF32, cdevF32, cdevAny, cdevAny),
	spec("group_norm", "GroupNormParams", 13, devF32, cdevF32, cdevAny, cdevAny),
	spec("moments", "MomentsParams", 5, devF32, devF32, cdevF32),
	spec("gemm", "GemmParams", 21, devF32, cdevAny, cdevAny, cdevAny),
	spec("gemm_f16", "GemmParams", 21, devF32, cdevAny, cdevAny, cdevAny),
	spec("conv2d", "ConvParams", 17, devF32, cdevF32, cdevAny, cdevAny),
	spec("conv2d_f16", "ConvParams", 17, devF32, cdevF32, cdevAny, cdevAny),
	spec("attention", "AttentionParams", 25, devF32, cdevAny, cdevAny, cdevAny),
}

// kernelByName returns the table entry of a kernel, or nil.
func kernelByName(name string) *kernelSpec {
	for i := range kernels {
		if kernels[i].name == name {
			return &kernels[i]
		}
	}
	return nil
}
