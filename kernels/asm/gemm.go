package asm

import (
	"fmt"
	"runtime"
	"sync"
)

// Elem is the element type of a GEMM operand.
type Elem uint8

// The element types a GEMM operand may hold. Activations are F32; weights are
// whatever the checkpoint stores and are widened inside the packing or the kernel,
// never copied whole.
const (
	ElemF32  Elem = iota // float32
	ElemF16              // IEEE half precision, as uint16 bit patterns
	ElemBF16             // bfloat16, as uint16 bit patterns
)

func (e Elem) String() string {
	switch e {
	case ElemF32:
		return "f32"
	case ElemF16:
		return "f16"
	case ElemBF16:
		return "bf16"
	}
	return fmt.Sprintf("Elem(%d)", uint8(e))
}

// Operand is a row-major matrix operand of Gemm. If Trans is set, the memory holds
// the transpose of the matrix that takes part in the product (so a k×n operand
// with Trans holds n rows of k elements). Stride is the distance in elements between
// consecutive rows of the memory.
type Operand struct {
	F32    []float32 // the elements, when Elem is ElemF32
	U16    []uint16  // the bit patterns, when Elem is ElemF16 or ElemBF16
	Elem   Elem
	Stride int
	Trans  bool
}

// check panics when the memory of an operand cannot hold a rows×cols matrix.
func (o *Operand) check(name string, rows, cols int) {
	if rows == 0 || cols == 0 {
		return
	}
	r, c := rows, cols
	if o.Trans {
		r, c = cols, rows
	}
	if o.Stride < c {
		panic(fmt.Sprintf("asm.Gemm: operand %s stride %d < row length %d", name, o.Stride, c))
	}
	need := (r-1)*o.Stride + c
	have := len(o.F32)
	if o.Elem != ElemF32 {
		have = len(o.U16)
	}
	if have < need {
		panic(fmt.Sprintf("asm.Gemm: operand %s (%s, %dx%d, stride %d) needs %d elements, has %d", name, o.Elem, rows, cols, o.Stride, need, have))
	}
}

// The blocking of the GEMM, after BLIS: a packed kc×nc block of B stays in L3 (or
// L2), a packed mc×kc block of A in L2, and the micro-kernel sweeps an mr×kc sliver
// of A against a kc×nr sliver of B kept in L1, accumulating an mr×nr tile of C in
// registers (12 AVX registers for 6×16 on amd64, 24 NEON registers on arm64).
const (
	gemmMR = 6
	gemmNR = 16
	gemmKC = 320
	gemmMC = 144  // multiple of gemmMR
	gemmNC = 3072 // multiple of gemmNR
)

// Gemm computes C = alpha·A·B + beta·C, where A is m×k, B is k×n and C is m×n,
// row-major with row stride ldc. With beta 0, C is overwritten (NaNs in it do not
// propagate). threads bounds the goroutines used: 0 or less means GOMAXPROCS, 1
// runs on the calling goroutine. It panics on operands too short for their shapes.
func Gemm(m, n, k int, alpha float32, a, b Operand, beta float32, c []float32, ldc int, threads int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("asm.Gemm: negative size %dx%dx%d", m, n, k))
	}
	if m == 0 || n == 0 {
		return
	}
	a.check("A", m, k)
	b.check("B", k, n)
	if ldc < n || len(c) < (m-1)*ldc+n {
		panic(fmt.Sprintf("asm.Gemm: C (%dx%d, ldc %d) needs %d elements, has %d", m, n, ldc, (m-1)*ldc+n, len(c)))
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	// Small products are not worth a goroutine.
	if work := m * n * k; work < 1<<18 {
		threads = 1
	}
	tilesM := (m + gemmMR - 1) / gemmMR
	tilesN := (n + gemmNR - 1) / gemmNR
	// Each goroutine takes a band of C's columns (or rows) and runs the serial
	// algorithm on it with its own packing buffers: bands share nothing but A (or B),
	// which each packs again; that costs O(k·m) per band against O(k·m·n/threads).
	if n >= m && threads > 1 && tilesN >= 2 {
		bands := min(threads, tilesN)
		parallelBands(bands, func(i int) {
			lo, hi := tilesN*i/bands*gemmNR, min(n, tilesN*(i+1)/bands*gemmNR)
			bb := b
			if bb.Trans {
				bb = shiftOperand(bb, lo*bb.Stride)
			} else {
				bb = shiftOperand(bb, lo)
			}
			gemmSerial(m, hi-lo, k, alpha, &a, &bb, beta, c[lo:], ldc)
		})
		return
	}
	if threads > 1 && tilesM >= 2 {
		bands := min(threads, tilesM)
		parallelBands(bands, func(i int) {
			lo, hi := tilesM*i/bands*gemmMR, min(m, tilesM*(i+1)/bands*gemmMR)
			aa := a
			if aa.Trans {
				aa = shiftOperand(aa, lo)
			} else {
				aa = shiftOperand(aa, lo*aa.Stride)
			}
			gemmSerial(hi-lo, n, k, alpha, &aa, &b, beta, c[lo*ldc:], ldc)
		})
		return
	}
	gemmSerial(m, n, k, alpha, &a, &b, beta, c, ldc)
}

func shiftOperand(o Operand, off int) Operand {
	if o.Elem == ElemF32 {
		o.F32 = o.F32[off:]
	} else {
		o.U16 = o.U16[off:]
	}
	return o
}

func parallelBands(n int, fn func(i int)) {
	var wg sync.WaitGroup
	wg.Add(n - 1)
	for i := 1; i < n; i++ {
		go func() {
			defer wg.Done()
			fn(i)
		}()
	}
	fn(0)
	wg.Wait()
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on float32 row-major matrices, where
// op(X) is X or its transpose; op(A) is m×k, op(B) is k×n. It uses every core.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Gemm(m, n, k, alpha, Operand{F32: a, Stride: lda, Trans: transA}, Operand{F32: b, Stride: ldb, Trans: transB}, beta, c, ldc, 0)
}

// SgemmF16B is Sgemm with B held as IEEE half-precision bit patterns, widened to
// float32 inside the micro-kernel.
func SgemmF16B(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []uint16, ldb int, beta float32, c []float32, ldc int) {
	Gemm(m, n, k, alpha, Operand{F32: a, Stride: lda, Trans: transA}, Operand{U16: b, Elem: ElemF16, Stride: ldb, Trans: transB}, beta, c, ldc, 0)
}

// gemmBuffers are one goroutine's packing buffers, reused through a pool so that
// a model step allocates nothing here.
type gemmBuffers struct {
	a   []float32 // gemmMC×gemmKC, in mr-row slivers
	b   []float32 // gemmKC×gemmNC, in nr-column slivers (F32 and BF16 B)
	bh  []uint16  // the same for F16 B, kept in half precision
	tmp [gemmMR * gemmNR]float32
}

var gemmPool = sync.Pool{New: func() any {
	return &gemmBuffers{
		a: make([]float32, gemmMC*gemmKC),
	}
}}

func gemmSerial(m, n, k int, alpha float32, a, b *Operand, beta float32, c []float32, ldc int) {
	// Apply beta first, so that the micro-kernel only ever accumulates.
	if beta != 1 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
			} else {
				scaleShift(row, row, beta, 0)
			}
		}
	}
	if k == 0 || alpha == 0 {
		return
	}
	buf := gemmPool.Get().(*gemmBuffers)
	defer gemmPool.Put(buf)
	halfB := b.Elem == ElemF16 && hasF16Kernel
	for jc := 0; jc < n; jc += gemmNC {
		nc := min(gemmNC, n-jc)
		ncPad := (nc + gemmNR - 1) / gemmNR * gemmNR
		for pc := 0; pc < k; pc += gemmKC {
			kc := min(gemmKC, k-pc)
			if halfB {
				if cap(buf.bh) < gemmKC*gemmNC {
					buf.bh = make([]uint16, gemmKC*gemmNC)
				}
				packBHalf(buf.bh[:kc*ncPad], b, pc, jc, kc, nc)
			} else {
				if cap(buf.b) < gemmKC*gemmNC {
					buf.b = make([]float32, gemmKC*gemmNC)
				}
				packB(buf.b[:kc*ncPad], b, pc, jc, kc, nc)
			}
			for ic := 0; ic < m; ic += gemmMC {
				mc := min(gemmMC, m-ic)
				packA(buf.a, a, alpha, ic, pc, mc, kc)
				for jr := 0; jr < nc; jr += gemmNR {
					nr := min(gemmNR, nc-jr)
					for ir := 0; ir < mc; ir += gemmMR {
						mr := min(gemmMR, mc-ir)
						pa := buf.a[ir*kc : ir*kc+kc*gemmMR]
						ci := (ic+ir)*ldc + jc + jr
						full := mr == gemmMR && nr == gemmNR
						cTile, ldt := c[ci:], ldc
						if !full {
							clear(buf.tmp[:])
							cTile, ldt = buf.tmp[:], gemmNR
						}
						if halfB {
							kernelF16B(kc, pa, buf.bh[jr*kc:jr*kc+kc*gemmNR], cTile, ldt)
						} else {
							kernelF32(kc, pa, buf.b[jr*kc:jr*kc+kc*gemmNR], cTile, ldt)
						}
						if !full {
							for r := 0; r < mr; r++ {
								add(c[ci+r*ldc:ci+r*ldc+nr], c[ci+r*ldc:ci+r*ldc+nr], buf.tmp[r*gemmNR:r*gemmNR+nr])
							}
						}
					}
				}
			}
		}
	}
}

// packA copies alpha·A[ic:ic+mc, pc:pc+kc] into slivers of gemmMR rows: sliver s
// holds, for each p, the gemmMR elements A[ic+s·mr+r, pc+p], zero past the edge.
func packA(dst []float32, a *Operand, alpha float32, ic, pc, mc, kc int) {
	for s := 0; s < mc; s += gemmMR {
		d := dst[s*kc : s*kc+kc*gemmMR]
		rows := min(gemmMR, mc-s)
		if a.Elem == ElemF32 && !a.Trans {
			for r := 0; r < rows; r++ {
				src := a.F32[(ic+s+r)*a.Stride+pc:][:kc]
				for p, v := range src {
					d[p*gemmMR+r] = alpha * v
				}
			}
		} else if a.Elem == ElemF32 {
			for p := 0; p < kc; p++ {
				src := a.F32[(pc+p)*a.Stride+ic+s:][:rows]
				for r, v := range src {
					d[p*gemmMR+r] = alpha * v
				}
			}
		} else if !a.Trans {
			// Half-precision rows are widened a run at a time by the vector
			// converters, then scattered into the sliver.
			var run [gemmKC]float32
			for r := 0; r < rows; r++ {
				widen(run[:kc], a.U16[(ic+s+r)*a.Stride+pc:][:kc], a.Elem)
				for p, v := range run[:kc] {
					d[p*gemmMR+r] = alpha * v
				}
			}
		} else {
			var run [gemmMR]float32
			for p := 0; p < kc; p++ {
				widen(run[:rows], a.U16[(pc+p)*a.Stride+ic+s:][:rows], a.Elem)
				for r, v := range run[:rows] {
					d[p*gemmMR+r] = alpha * v
				}
			}
		}
		for r := rows; r < gemmMR; r++ {
			for p := 0; p < kc; p++ {
				d[p*gemmMR+r] = 0
			}
		}
	}
}

// widen converts F16 or BF16 bit patterns to float32.
func widen(dst []float32, src []uint16, e Elem) {
	if e == ElemBF16 {
		bf16ToF32(dst, src)
	} else {
		f16ToF32(dst, src)
	}
}

// packB copies B[pc:pc+kc, jc:jc+nc] as float32 into slivers of gemmNR columns:
// sliver s holds, for each p, the gemmNR elements B[pc+p, jc+s·nr+j], zero past the edge.
func packB(dst []float32, b *Operand, pc, jc, kc, nc int) {
	for s := 0; s < nc; s += gemmNR {
		d := dst[s*kc : s*kc+kc*gemmNR]
		cols := min(gemmNR, nc-s)
		switch {
		case b.Elem == ElemF32 && !b.Trans:
			for p := 0; p < kc; p++ {
				copy(d[p*gemmNR:p*gemmNR+cols], b.F32[(pc+p)*b.Stride+jc+s:][:cols])
			}
		case b.Elem == ElemF32:
			for j := 0; j < cols; j++ {
				src := b.F32[(jc+s+j)*b.Stride+pc:][:kc]
				for p, v := range src {
					d[p*gemmNR+j] = v
				}
			}
		case b.Trans:
			var run [gemmKC]float32
			for j := 0; j < cols; j++ {
				widen(run[:kc], b.U16[(jc+s+j)*b.Stride+pc:][:kc], b.Elem)
				for p, v := range run[:kc] {
					d[p*gemmNR+j] = v
				}
			}
		default:
			for p := 0; p < kc; p++ {
				widen(d[p*gemmNR:p*gemmNR+cols], b.U16[(pc+p)*b.Stride+jc+s:][:cols], b.Elem)
			}
		}
		if cols < gemmNR {
			for p := 0; p < kc; p++ {
				clear(d[p*gemmNR+cols : p*gemmNR+gemmNR])
			}
		}
	}
}

// packBHalf is packB for F16 B, keeping the half-precision bits so that the
// packed block takes half the cache; the micro-kernel widens them.
func packBHalf(dst []uint16, b *Operand, pc, jc, kc, nc int) {
	for s := 0; s < nc; s += gemmNR {
		d := dst[s*kc : s*kc+kc*gemmNR]
		cols := min(gemmNR, nc-s)
		if b.Trans {
			for j := 0; j < cols; j++ {
				src := b.U16[(jc+s+j)*b.Stride+pc:][:kc]
				for p, v := range src {
					d[p*gemmNR+j] = v
				}
			}
		} else {
			for p := 0; p < kc; p++ {
				copy(d[p*gemmNR:p*gemmNR+cols], b.U16[(pc+p)*b.Stride+jc+s:][:cols])
			}
		}
		if cols < gemmNR {
			for p := 0; p < kc; p++ {
				clear(d[p*gemmNR+cols : p*gemmNR+gemmNR])
			}
		}
	}
}

// kernelF32Generic is the Go reference of the micro-kernel:
// C[0:6, 0:16] += Σp a[p·6+r]·b[p·16+j].
func kernelF32Generic(kc int, a, b, c []float32, ldc int) {
	var acc [gemmMR * gemmNR]float32
	for p := 0; p < kc; p++ {
		bp := b[p*gemmNR : p*gemmNR+gemmNR]
		for r := 0; r < gemmMR; r++ {
			av := a[p*gemmMR+r]
			row := acc[r*gemmNR : r*gemmNR+gemmNR]
			for j, bv := range bp {
				row[j] += av * bv
			}
		}
	}
	for r := 0; r < gemmMR; r++ {
		row := c[r*ldc : r*ldc+gemmNR]
		for j := range row {
			row[j] += acc[r*gemmNR+j]
		}
	}
}

// kernelF16BGeneric is kernelF32Generic with b in half precision.
func kernelF16BGeneric(kc int, a []float32, b []uint16, c []float32, ldc int) {
	var acc [gemmMR * gemmNR]float32
	for p := 0; p < kc; p++ {
		for r := 0; r < gemmMR; r++ {
			av := a[p*gemmMR+r]
			row := acc[r*gemmNR : r*gemmNR+gemmNR]
			for j := range row {
				row[j] += av * f16Scalar(b[p*gemmNR+j])
			}
		}
	}
	for r := 0; r < gemmMR; r++ {
		row := c[r*ldc : r*ldc+gemmNR]
		for j := range row {
			row[j] += acc[r*gemmNR+j]
		}
	}
}

// fmaFlopsPerIter is the work of one iteration of the peak loop: 12 FMAs of 8 lanes.
const fmaFlopsPerIter = 12 * 8 * 2
