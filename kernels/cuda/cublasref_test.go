package cuda

import (
	"math"
	"testing"
	"unsafe"

	"github.com/sdgo/sdgo/tensor"
)

// refGemm is a host model of cublasGemmStridedBatchedEx (cublasGemmEx is batch
// 1): column-major C[b] = alpha·op(A[b])·op(B[b]) + beta·C[b] over memory at
// raw addresses, with cuBLAS's argument checks (types, compute type, leading
// dimensions), returning a cublasStatus_t. F16 and BF16 elements are decoded
// exactly; accumulation is float64; TF32 compute rounds F32 inputs to a 10-bit
// mantissa. The emulator's fake cuBLAS and the CPU tests of the call mapping use it.
type refGemm struct {
	ta, tb, m, n, k int32
	alpha, beta     float32
	a, b, c         unsafe.Pointer
	at, bt, ct      int32
	lda, ldb, ldc   int32
	sa, sb, sc      int64
	batch           int32
	compute, algo   int32
}

const cublasInvalidValue = 7

func (g refGemm) run() int32 {
	okType := func(t int32) bool { return t == cudaR32F || t == cudaR16F || t == cudaR16BF }
	switch {
	case !okType(g.at) || g.at != g.bt || g.ct != cudaR32F:
		return cublasInvalidValue
	case g.compute != cublasCompute32F && !(g.compute == cublasCompute32FFastTF32 && g.at == cudaR32F):
		return cublasInvalidValue
	case g.algo != cublasGemmDefault || g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0:
		return cublasInvalidValue
	case (g.ta != cublasOpN && g.ta != cublasOpT) || (g.tb != cublasOpN && g.tb != cublasOpT):
		return cublasInvalidValue
	}
	rowsA, rowsB := g.m, g.k // rows of A and B as stored
	if g.ta == cublasOpT {
		rowsA = g.k
	}
	if g.tb == cublasOpT {
		rowsB = g.n
	}
	if g.lda < max(1, rowsA) || g.ldb < max(1, rowsB) || g.ldc < max(1, g.m) {
		return cublasInvalidValue
	}
	size := func(t int32) int64 {
		if t == cudaR32F {
			return 4
		}
		return 2
	}
	tf32 := g.compute == cublasCompute32FFastTF32
	load := func(p unsafe.Pointer, t int32, i int64) float64 {
		q := unsafe.Add(p, i*size(t))
		switch t {
		case cudaR16F:
			return float64(halfToFloat(*(*uint16)(q)))
		case cudaR16BF:
			return float64(math.Float32frombits(uint32(*(*uint16)(q)) << 16))
		}
		v := *(*float32)(q)
		if tf32 {
			v = roundTF32(v)
		}
		return float64(v)
	}
	for bi := int64(0); bi < int64(g.batch); bi++ {
		for j := int64(0); j < int64(g.n); j++ {
			for i := int64(0); i < int64(g.m); i++ {
				var s float64
				for p := int64(0); p < int64(g.k); p++ {
					ai := i + p*int64(g.lda) // op(A)(i, p)
					if g.ta == cublasOpT {
						ai = p + i*int64(g.lda)
					}
					bj := p + j*int64(g.ldb) // op(B)(p, j)
					if g.tb == cublasOpT {
						bj = j + p*int64(g.ldb)
					}
					s += load(g.a, g.at, bi*g.sa+ai) * load(g.b, g.bt, bi*g.sb+bj)
				}
				c := (*float32)(unsafe.Add(g.c, (bi*g.sc+i+j*int64(g.ldc))*4))
				v := float64(g.alpha) * s
				if g.beta != 0 {
					v += float64(g.beta) * float64(*c)
				}
				*c = float32(v)
			}
		}
	}
	return cublasStatusSuccess
}

// halfToFloat decodes an IEEE binary16.
func halfToFloat(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	switch e {
	case 0:
		return sign * float32(math.Ldexp(m, -24))
	case 31:
		if m != 0 {
			return float32(math.NaN())
		}
		return sign * float32(math.Inf(1))
	}
	return sign * float32(math.Ldexp(1024+m, e-25))
}

// roundTF32 rounds v to TF32's 10-bit mantissa, to nearest even.
func roundTF32(v float32) float32 {
	b := math.Float32bits(v)
	if b&0x7f800000 == 0x7f800000 {
		return v
	}
	b += 0xfff + (b>>13)&1
	return math.Float32frombits(b &^ 0x1fff)
}

// TestHalfToFloat checks the decoder against the tensor package's rounding.
func TestHalfToFloat(t *testing.T) {
	vals := []float32{0, 1, -2.5, 65504, 6.1e-5, 5.96e-8, 3.14159, -1e-3}
	x, err := tensor.FromFloat32(tensor.NewCPU(), vals, len(vals))
	if err != nil {
		t.Fatal(err)
	}
	h, err := x.To(tensor.F16)
	if err != nil {
		t.Fatal(err)
	}
	w, err := h.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	bits := make([]uint16, len(vals))
	if err := h.Backend().Read(h.Storage(), h.Offset(), bits); err != nil {
		t.Fatal(err)
	}
	for i, b := range bits {
		if got := halfToFloat(b); got != w[i] {
			t.Errorf("halfToFloat(%#04x) = %v, want %v", b, got, w[i])
		}
	}
	if got := roundTF32(1 + 1.0/4096); got != 1 {
		t.Errorf("roundTF32(1+2^-12) = %v", got)
	}
	if got := roundTF32(1 + 3.0/2048); got != 1+2.0/1024 {
		t.Errorf("roundTF32(1+3·2^-11) = %v", got)
	}
}

// TestBlasGemmMapping runs row-major products as blasGemm hands them to cuBLAS
// (rowMajorGemm's arguments, in the order cublas.gemm passes them) through the
// host model of cuBLAS: F16 operands with F32 output, broadcast batches (batch
// stride 0), transposed operands, an output with a leading dimension wider than
// its rows (a column slice of a larger matrix, as convGemm's chunks and
// attention's [B,L,H,D] outputs are), alpha and beta.
func TestBlasGemmMapping(t *testing.T) {
	const nb, m, n, k = 3, 5, 6, 7
	f16 := func(v float32) uint16 { // small integers and halves are exact in F16
		b := math.Float32bits(v)
		return uint16(b>>16&0x8000 | ((b>>23&0xff)-112)<<10 | b>>13&0x3ff)
	}
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			for _, abatch := range []bool{false, true} {
				aMem := make([]uint16, 512)
				bMem := make([]uint16, 512)
				av := func(bi, i, p int) float32 { return float32((bi*7+i*3+p*5)%9) - 4 }
				bv := func(bi, p, j int) float32 { return float32((bi*2+p*5+j*7)%11)/2 - 2.5 }
				lda, ldb := k+2, n+1
				if ta {
					lda = m + 3
				}
				if tb {
					ldb = k + 1
				}
				sa, sb := 100, 120
				if !abatch {
					sa = 0
				}
				for bi := range nb {
					for i := range m {
						for p := range k {
							if !abatch && bi > 0 {
								break
							}
							if v := av(bi, i, p); v != 0 {
								idx := i*lda + p
								if ta {
									idx = p*lda + i
								}
								aMem[bi*sa+idx] = f16(v)
							}
						}
					}
					for p := range k {
						for j := range n {
							if v := bv(bi, p, j); v != 0 {
								idx := p*ldb + j
								if tb {
									idx = j*ldb + p
								}
								bMem[bi*sb+idx] = f16(v)
							}
						}
					}
				}
				const ldc, sc = n + 4, 80
				cMem := make([]float32, nb*sc)
				for i := range cMem {
					cMem[i] = 1
				}
				a := matOperand{dt: tensor.F16, ld: lda, trans: ta, batch: sa}
				b := matOperand{dt: tensor.F16, ld: ldb, trans: tb, batch: sb}
				g, ok := rowMajorGemm(m, n, k, a, b, ldc)
				if !ok {
					t.Fatal("rejected")
				}
				// As cublas.gemm calls cublasGemmStridedBatchedEx: B first.
				st := refGemm{ta: g.opA, tb: g.opB, m: g.m, n: g.n, k: g.k, alpha: 0.5, beta: 2,
					a: unsafe.Pointer(&bMem[0]), at: cudaR16F, lda: g.lda, sa: int64(b.batch),
					b: unsafe.Pointer(&aMem[0]), bt: cudaR16F, ldb: g.ldb, sb: int64(a.batch),
					c: unsafe.Pointer(&cMem[0]), ct: cudaR32F, ldc: g.ldc, sc: sc,
					batch: nb, compute: cublasCompute32F, algo: cublasGemmDefault}.run()
				if st != cublasStatusSuccess {
					t.Fatalf("status %d", st)
				}
				for bi := range nb {
					abi := bi
					if !abatch {
						abi = 0
					}
					for i := range m {
						for j := range ldc {
							want := float32(1)
							if j < n {
								var s float32
								for p := range k {
									s += av(abi, i, p) * bv(bi, p, j)
								}
								want = 0.5*s + 2
							}
							if got := cMem[bi*sc+i*ldc+j]; got != want {
								t.Fatalf("ta=%v tb=%v abatch=%v: C[%d][%d,%d] = %v, want %v", ta, tb, abatch, bi, i, j, got, want)
							}
						}
					}
				}
			}
		}
	}
}
