package tensor

import (
	"github.com/sdgo/sdgo/kernels/asm"
)

// conv2dColumnBudget bounds the im2col buffer of Conv2d, in float32 elements
// (16 MiB): output positions are processed in chunks whose columns fit in it.
// Each chunk repacks the weight, so smaller chunks cost time: with 4 MiB a VAE
// decode took about 7% longer.
const conv2dColumnBudget = 1 << 22

// conv2dChunk returns how many output positions (of p in all) one im2col chunk holds
// for a column height of kdim: as many as the budget allows, a multiple of 16 (the
// GEMM's column tile), at least 16.
func conv2dChunk(p, kdim int) int {
	n := conv2dColumnBudget / max(kdim, 1)
	n = max(n/16*16, 16)
	if n >= p {
		return p
	}
	// Even out the chunks so that the last one is not a sliver.
	chunks := (p + n - 1) / n
	n = (p + chunks - 1) / chunks
	return (n + 15) / 16 * 16
}

// Conv2d sets dst = conv(x, w) + bias; see Backend.
//
// A 1×1 convolution with stride 1 and no padding is one GEMM per image: the weight
// [O,C] times the image [C,H·W]. Every other convolution unfolds its input (im2col)
// into a column buffer of C·KH·KW rows for a chunk of output positions, at most
// conv2dColumnBudget elements, taken from the backend's pools, and multiplies the
// weight [O,C·KH·KW] by it straight into the chunk's columns of the NCHW output.
// The weight is an operand of asm.Gemm in its own dtype (F16 and BF16 are widened
// while the GEMM packs it). The bias is written into the output first and the GEMM
// accumulates onto it. The GEMM uses every core; so does the unfolding.
func (c *CPU) Conv2d(dst, x, w, bias *Tensor, p Conv2dParams) error {
	defer keepAlive(dst, x, w, bias)
	const op = "Conv2d"
	ds, err := c.storage(op, dst.buf.s)
	if err != nil {
		return err
	}
	xs, err := c.storage(op, x.buf.s)
	if err != nil {
		return err
	}
	ws, err := c.storage(op, w.buf.s)
	if err != nil {
		return err
	}
	if dst.dtype != F32 || x.dtype != F32 {
		return dtypeErr(op, "%v into %v (want F32)", x, dst)
	}
	if len(x.shape) != 4 || len(w.shape) != 4 || len(dst.shape) != 4 {
		return shapeErr(op, "%v * %v into %v: want rank 4", x, w, dst)
	}
	if !x.IsContiguous() || !w.IsContiguous() || !dst.IsContiguous() {
		return shapeErr(op, "%v * %v into %v: want contiguous tensors", x, w, dst)
	}
	nImg, ch, h, wd := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	oc, kh, kw := w.shape[0], w.shape[2], w.shape[3]
	ho, wo := dst.shape[2], dst.shape[3]
	stride := max(p.Stride, 1)
	if w.shape[1] != ch || dst.shape[0] != nImg || dst.shape[1] != oc ||
		ho != conv2dOutSize(h, kh, stride, p.Padding, p.PadEnd) || wo != conv2dOutSize(wd, kw, stride, p.Padding, p.PadEnd) {
		return shapeErr(op, "%v * %v (stride %d, padding %d+%d) into %v", x, w, stride, p.Padding, p.PadEnd, dst)
	}
	if bias != nil && (len(bias.shape) != 1 || bias.shape[0] != oc) {
		return shapeErr(op, "bias %v for weight %v", bias, w)
	}
	if dst.Numel() == 0 {
		return nil
	}
	var biasF []float32
	if bias != nil {
		if biasF, err = gemmVector(c, op, bias); err != nil {
			return err
		}
	}
	kdim := ch * kh * kw
	positions := ho * wo
	wOp := gemmOperandAt(ws, w.offset, kdim, false)
	out := ds.F32[dst.offset:]
	in := xs.F32[x.offset:]

	// gemm multiplies the weight by np columns (ldb apart) into the output of image
	// i from position p0.
	gemm := func(i, p0, np int, cols []float32, ldb, threads int) {
		o := out[i*oc*positions+p0:]
		beta := float32(0)
		if biasF != nil {
			beta = 1
			for r, v := range biasF {
				row := o[r*positions : r*positions+np]
				for j := range row {
					row[j] = v
				}
			}
		}
		asm.Gemm(oc, np, kdim, 1, wOp, asm.Operand{F32: cols, Stride: ldb}, beta, o, positions, threads)
	}

	if kh == 1 && kw == 1 && stride == 1 && p.Padding == 0 && p.PadEnd == 0 {
		hw := h * wd
		if oc*hw*ch < matmulSmall && nImg > 1 {
			asm.ParallelFor(nImg, 1, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					gemm(i, 0, hw, in[i*ch*hw:], hw, 1)
				}
			})
			return nil
		}
		for i := range nImg {
			gemm(i, 0, hw, in[i*ch*hw:], hw, 0)
		}
		return nil
	}

	chunk := conv2dChunk(positions, kdim)
	colStorage, err := c.Alloc(F32, kdim*chunk)
	if err != nil {
		return err
	}
	defer c.Free(colStorage)
	col := colStorage.(*CPUStorage).F32
	g := conv2dGeom{c: ch, h: h, w: wd, kh: kh, kw: kw, wo: wo, stride: stride, pad: p.Padding}
	for i := range nImg {
		img := in[i*ch*h*wd : (i+1)*ch*h*wd]
		for p0 := 0; p0 < positions; p0 += chunk {
			np := min(chunk, positions-p0)
			asm.ParallelFor(kdim, max(1, 1<<14/np), func(lo, hi int) {
				g.im2col(col, img, p0, np, lo, hi)
			})
			gemm(i, p0, np, col, np, 0)
		}
	}
	return nil
}

// conv2dOutSize is the output length of a convolution along one axis.
func conv2dOutSize(in, k, stride, pad, padEnd int) int {
	n := in + 2*pad + padEnd - k
	if n < 0 {
		return 0
	}
	return n/stride + 1
}

// conv2dGeom is the geometry of one image of a convolution.
type conv2dGeom struct {
	c, h, w int // input channels, height, width
	kh, kw  int // kernel
	wo      int // output width
	stride  int
	pad     int // zero rows/columns before the first row and column
}

// im2col writes rows [rlo, rhi) of the column matrix for output positions
// [p0, p0+np) of img [C,H,W] into col (np elements per row): row (ci·KH+ky)·KW+kx
// holds, for each output position (oy, ox), img[ci, oy·s-pad+ky, ox·s-pad+kx] or 0
// outside the image.
func (g *conv2dGeom) im2col(col, img []float32, p0, np, rlo, rhi int) {
	s := g.stride
	for r := rlo; r < rhi; r++ {
		kx := r % g.kw
		ky := r / g.kw % g.kh
		ci := r / (g.kw * g.kh)
		dst := col[r*np : r*np+np]
		plane := img[ci*g.h*g.w : (ci+1)*g.h*g.w]
		// Output columns whose input column lies inside the image: 0 ≤ ox·s-pad+kx < W.
		oxLo := max(0, conv2dCeilDiv(g.pad-kx, s))
		oxHi := min(g.wo, conv2dFloorDiv(g.w-1+g.pad-kx, s)+1)
		for d := 0; d < np; {
			pos := p0 + d
			oy, ox0 := pos/g.wo, pos%g.wo
			n := min(g.wo-ox0, np-d) // positions of this output row in the chunk
			seg := dst[d : d+n]
			iy := oy*s - g.pad + ky
			if iy < 0 || iy >= g.h || oxLo >= oxHi {
				clear(seg)
				d += n
				continue
			}
			src := plane[iy*g.w : (iy+1)*g.w]
			lo, hi := max(oxLo, ox0), min(oxHi, ox0+n) // valid ox in this segment
			if lo >= hi {
				clear(seg)
				d += n
				continue
			}
			clear(seg[:lo-ox0])
			ix := lo*s - g.pad + kx
			if s == 1 {
				copy(seg[lo-ox0:hi-ox0], src[ix:ix+hi-lo])
			} else {
				v := seg[lo-ox0 : hi-ox0]
				for j := range v {
					v[j] = src[ix+j*s]
				}
			}
			clear(seg[hi-ox0:])
			d += n
		}
	}
}

func conv2dFloorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func conv2dCeilDiv(a, b int) int { return -conv2dFloorDiv(-a, b) }
