package tensor

import (
	"github.com/sdgo/sdgo/kernels/asm"
)

// This file holds the CPU backend's data movement: Fill, Copy, Concat, Embedding
// and ResizeNearest, and the strided-loop machinery that the element-wise operations
// share.

const (
	// parChunk is the least number of elements worth handing to a goroutine.
	parChunk = 1 << 14
	// convChunk is the length of the scratch buffers that strided or converting
	// runs are staged through.
	convChunk = 1024
)

// scratch is a goroutine's staging buffers for strided and converting runs.
type scratch struct {
	f32 [convChunk]float32
	u16 [convChunk]uint16
}

// Coalesce drops the dimensions of size 1 from shape and merges each dimension
// into its outer neighbour where every operand's strides allow it, so that a
// contiguous tensor becomes one run and a broadcast or transposed one keeps only
// the dimensions that matter. The result has rank ≥ 1. shape must not be empty of
// elements. Device backends use it to index as few dimensions as their kernels
// need; the row-major order of the index space is kept.
func Coalesce(shape []int, strides ...[]int) ([]int, [][]int) {
	sh := make([]int, 0, len(shape))
	st := make([][]int, len(strides))
	for k := range st {
		st[k] = make([]int, 0, len(shape))
	}
	for i, d := range shape {
		if d == 1 {
			continue
		}
		if last := len(sh) - 1; last >= 0 {
			merge := true
			for k := range strides {
				if st[k][last] != strides[k][i]*d {
					merge = false
					break
				}
			}
			if merge {
				sh[last] *= d
				for k := range strides {
					st[k][last] = strides[k][i]
				}
				continue
			}
		}
		sh = append(sh, d)
		for k := range strides {
			st[k] = append(st[k], strides[k][i])
		}
	}
	if len(sh) == 0 {
		sh = append(sh, 1)
		for k := range st {
			st[k] = append(st[k], 0)
		}
	}
	return sh, st
}

// forEachRun walks the index space of a coalesced shape as runs along its last
// dimension, split over goroutines, and calls fn(off, n, s) for each run: off[k] is
// operand k's element offset at the start of the run (base[k] plus the strides of
// the run's index), n the run's length and s the goroutine's scratch. Long runs
// are cut into pieces so that a single row still spreads over the cores. fn must
// not keep off.
func forEachRun(shape []int, strides [][]int, base []int, fn func(off []int, n int, s *scratch)) {
	r := len(shape)
	inner := shape[r-1]
	rows := numel(shape[:r-1])
	if rows == 0 || inner == 0 {
		return
	}
	pieces := 1
	if inner > 2*parChunk {
		pieces = (inner + parChunk - 1) / parChunk
	}
	grain := max(1, parChunk*pieces/inner)
	asm.ParallelFor(rows*pieces, grain, func(lo, hi int) {
		nop := len(strides)
		s := new(scratch)
		off := make([]int, nop)
		rowOff := make([]int, nop)
		idx := make([]int, r-1)
		copy(rowOff, base)
		row, p := lo/pieces, lo%pieces
		for j := r - 2; j >= 0; j-- {
			idx[j] = row % shape[j]
			row /= shape[j]
			for k := range nop {
				rowOff[k] += idx[j] * strides[k][j]
			}
		}
		for range hi - lo {
			start, end := p*inner/pieces, (p+1)*inner/pieces
			for k := range nop {
				off[k] = rowOff[k] + start*strides[k][r-1]
			}
			fn(off, end-start, s)
			if p++; p < pieces {
				continue
			}
			p = 0
			for j := r - 2; j >= 0; j-- {
				idx[j]++
				for k := range nop {
					rowOff[k] += strides[k][j]
				}
				if idx[j] < shape[j] {
					break
				}
				idx[j] = 0
				for k := range nop {
					rowOff[k] -= strides[k][j] * shape[j]
				}
			}
		}
	})
}

// parallelRange splits [0,n) over goroutines in ranges of at least parChunk
// elements.
func parallelRange(n int, fn func(lo, hi int)) { asm.ParallelFor(n, parChunk, fn) }

// rowGrain is the number of rows of length n that make a goroutine's worth of work.
func rowGrain(n int) int { return max(1, parChunk/max(n, 1)) }

// storages returns the CPU storages of ts, or an error naming op when one of them
// lives on another backend.
func (c *CPU) storages(op string, ts ...*Tensor) ([]*CPUStorage, error) {
	out := make([]*CPUStorage, len(ts))
	for i, t := range ts {
		if t == nil {
			continue
		}
		s, err := c.storage(op, t.buf.s)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// widenRun sets dst[i] to element off+i*stride of s, widened to float32.
func widenRun(dst []float32, s *CPUStorage, off, stride int, sc *scratch) {
	n := len(dst)
	if n == 0 {
		return
	}
	if s.dt == F32 {
		switch stride {
		case 1:
			copy(dst, s.F32[off:off+n])
		case 0:
			fillF32(dst, s.F32[off])
		default:
			src := s.F32
			for i := range dst {
				dst[i] = src[off+i*stride]
			}
		}
		return
	}
	conv := asm.F16ToF32
	if s.dt == BF16 {
		conv = asm.BF16ToF32
	}
	switch stride {
	case 1:
		conv(dst, s.U16[off:off+n])
	case 0:
		conv(dst[:1], s.U16[off:off+1])
		fillF32(dst[1:], dst[0])
	default:
		src := s.U16
		for i := 0; i < n; i += convChunk {
			k := min(convChunk, n-i)
			g := sc.u16[:k]
			o := off + i*stride
			for j := range g {
				g[j] = src[o+j*stride]
			}
			conv(dst[i:i+k], g)
		}
	}
}

// narrowRun stores src into the F16 or BF16 storage d from element off with the
// given stride, rounding to nearest even.
func narrowRun(d *CPUStorage, off, stride int, src []float32, sc *scratch) {
	n := len(src)
	conv := asm.F32ToF16
	if d.dt == BF16 {
		conv = asm.F32ToBF16
	}
	if stride == 1 {
		conv(d.U16[off:off+n], src)
		return
	}
	for i := 0; i < n; i += convChunk {
		k := min(convChunk, n-i)
		g := sc.u16[:k]
		conv(g, src[i:i+k])
		o := off + i*stride
		for j, v := range g {
			d.U16[o+j*stride] = v
		}
	}
}

// copyRun copies n elements of s (from soff, stride ss) to d (from doff, stride
// ds), converting the dtype.
func copyRun(d *CPUStorage, doff, ds int, s *CPUStorage, soff, ss, n int, sc *scratch) {
	if d.dt == s.dt {
		if d.dt == F32 {
			copyStrided(d.F32, doff, ds, s.F32, soff, ss, n)
		} else {
			copyStrided(d.U16, doff, ds, s.U16, soff, ss, n)
		}
		return
	}
	if d.dt == F32 {
		if ds == 1 {
			widenRun(d.F32[doff:doff+n], s, soff, ss, sc)
			return
		}
		for i := 0; i < n; i += convChunk {
			k := min(convChunk, n-i)
			widenRun(sc.f32[:k], s, soff+i*ss, ss, sc)
			copyStrided(d.F32, doff+i*ds, ds, sc.f32[:k], 0, 1, k)
		}
		return
	}
	if s.dt == F32 && ss == 1 {
		narrowRun(d, doff, ds, s.F32[soff:soff+n], sc)
		return
	}
	for i := 0; i < n; i += convChunk {
		k := min(convChunk, n-i)
		widenRun(sc.f32[:k], s, soff+i*ss, ss, sc)
		narrowRun(d, doff+i*ds, ds, sc.f32[:k], sc)
	}
}

// copyStrided copies n elements between slices of one element type.
func copyStrided[E float32 | uint16](dst []E, doff, ds int, src []E, soff, ss, n int) {
	switch {
	case ds == 1 && ss == 1:
		copy(dst[doff:doff+n], src[soff:soff+n])
	case ds == 1 && ss == 0:
		d, v := dst[doff:doff+n], src[soff]
		for i := range d {
			d[i] = v
		}
	case ds == 1:
		d := dst[doff : doff+n]
		for i := range d {
			d[i] = src[soff+i*ss]
		}
	default:
		for i := range n {
			dst[doff+i*ds] = src[soff+i*ss]
		}
	}
}

func fillF32(d []float32, v float32) {
	for i := range d {
		d[i] = v
	}
}

// copyInto copies the elements of src (shape, strides ss, from offset soff) to d
// (strides ds, from offset doff), converting the dtype.
func copyInto(d *CPUStorage, doff int, ds []int, s *CPUStorage, soff int, ss []int, shape []int) {
	if numel(shape) == 0 {
		return
	}
	sh, st := Coalesce(shape, ds, ss)
	last := len(sh) - 1
	dInner, sInner := st[0][last], st[1][last]
	if d.dt == s.dt && dInner == 1 && sInner != 1 && sh[last] >= tile && (sInner*d.dt.Size())%512 == 0 {
		// A transpose whose source stride is a multiple of 512 bytes: read one
		// element per source row, the rows would all map to a few sets of the L1
		// cache and evict each other. Copy tile×tile blocks of the plane of the
		// last dimension and the source's unit-stride one instead, so that the
		// tile's source lines fit the cache's ways. (Other strides are faster
		// read a whole run at a time.)
		for j := range last {
			if st[1][j] == 1 && sh[j] >= tile {
				if d.dt == F32 {
					copyTiled(d.F32, s.F32, sh, st, doff, soff, j)
				} else {
					copyTiled(d.U16, s.U16, sh, st, doff, soff, j)
				}
				return
			}
		}
	}
	forEachRun(sh, st, []int{doff, soff}, func(off []int, n int, sc *scratch) {
		copyRun(d, off[0], dInner, s, off[1], sInner, n, sc)
	})
}

// tile is the side of the square blocks a transposing copy moves at a time: 8
// source lines fit the 8 ways of an L1 set even when their stride maps them all
// to one set.
const tile = 8

// copyTiled copies the coalesced index space sh (strides st[0] of dst, st[1] of
// src) when the last dimension has unit stride in dst and dimension j has unit
// stride in src: for each index of the other dimensions it moves the (j, last)
// plane in tile×tile blocks.
func copyTiled[E float32 | uint16](dst, src []E, sh []int, st [][]int, doff, soff, j int) {
	last := len(sh) - 1
	var outer []int // the dimensions other than j and last
	for i := range last {
		if i != j {
			outer = append(outer, i)
		}
	}
	nj, nl := sh[j], sh[last]
	dj, sl := st[0][j], st[1][last]
	jTiles := (nj + tile - 1) / tile
	units := jTiles
	for _, i := range outer {
		units *= sh[i]
	}
	asm.ParallelFor(units, max(1, parChunk/(tile*nl)), func(lo, hi int) {
		for u := lo; u < hi; u++ {
			j0 := (u % jTiles) * tile
			do, so := doff+j0*dj, soff+j0
			rest := u / jTiles
			for k := len(outer) - 1; k >= 0; k-- {
				i := outer[k]
				x := rest % sh[i]
				rest /= sh[i]
				do += x * st[0][i]
				so += x * st[1][i]
			}
			j1 := min(j0+tile, nj)
			for l0 := 0; l0 < nl; l0 += tile {
				l1 := min(l0+tile, nl)
				for jj := 0; jj < j1-j0; jj++ {
					drow := dst[do+jj*dj+l0 : do+jj*dj+l1]
					s := so + jj + l0*sl
					for l := range drow {
						drow[l] = src[s+l*sl]
					}
				}
			}
		}
	})
}

// Fill sets every element of the contiguous tensor dst to v (rounded to dst's dtype).
func (c *CPU) Fill(dst *Tensor, v float32) error {
	defer keepAlive(dst)
	ss, err := c.storages("Fill", dst)
	if err != nil {
		return err
	}
	d, n, off := ss[0], dst.Numel(), dst.offset
	if !dst.IsContiguous() {
		return shapeErr("Fill", "destination %v is not contiguous", dst)
	}
	if d.dt == F32 {
		parallelRange(n, func(lo, hi int) { fillF32(d.F32[off+lo:off+hi], v) })
		return nil
	}
	var h [1]uint16
	if d.dt == F16 {
		asm.F32ToF16(h[:], []float32{v})
	} else {
		asm.F32ToBF16(h[:], []float32{v})
	}
	parallelRange(n, func(lo, hi int) {
		s := d.U16[off+lo : off+hi]
		for i := range s {
			s[i] = h[0]
		}
	})
	return nil
}

// Copy copies src (any strides, including zero strides, any dtype) into the
// contiguous dst of the same shape, converting the dtype and rounding to nearest
// even when narrowing.
func (c *CPU) Copy(dst, src *Tensor) error {
	defer keepAlive(dst, src)
	ss, err := c.storages("Copy", dst, src)
	if err != nil {
		return err
	}
	if numel(dst.shape) != numel(src.shape) || !dst.IsContiguous() {
		return shapeErr("Copy", "%v (contiguous: %v) from %v", dst, dst.IsContiguous(), src)
	}
	copyInto(ss[0], dst.offset, ContiguousStrides(src.shape), ss[1], src.offset, src.strides, src.shape)
	return nil
}

// Concat writes xs one after another along axis into the contiguous dst. The
// inputs may be strided views of any dtype; they are converted to dst's dtype.
func (c *CPU) Concat(dst *Tensor, xs []*Tensor, axis int) error {
	defer keepAlive(dst)
	defer keepAlive(xs...)
	ss, err := c.storages("Concat", append([]*Tensor{dst}, xs...)...)
	if err != nil {
		return err
	}
	dstStrides := ContiguousStrides(dst.shape)
	at := 0
	for i, x := range xs {
		copyInto(ss[0], dst.offset+at*dstStrides[axis], dstStrides, ss[i+1], x.offset, x.strides, x.shape)
		at += x.shape[axis]
	}
	return nil
}

// Embedding sets row i of dst [len(ids),D] to row ids[i] of table [V,D]; the table
// may have any dtype and strides.
func (c *CPU) Embedding(dst, table *Tensor, ids []int) error {
	defer keepAlive(dst, table)
	ss, err := c.storages("Embedding", dst, table)
	if err != nil {
		return err
	}
	d, t := ss[0], ss[1]
	dim := table.shape[1]
	rs, cs := table.strides[0], table.strides[1]
	for _, id := range ids {
		if id < 0 || id >= table.shape[0] {
			return rangeErr("Embedding", "id %d for table %v", id, table.shape)
		}
	}
	asm.ParallelFor(len(ids), rowGrain(dim), func(lo, hi int) {
		sc := new(scratch)
		for i := lo; i < hi; i++ {
			o := dst.offset + i*dim
			widenRun(d.F32[o:o+dim], t, table.offset+ids[i]*rs, cs, sc)
		}
	})
	return nil
}

// ResizeNearest sets dst [N,C,H',W'] to the nearest-neighbour resampling of the
// contiguous x [N,C,H,W]; exact doubling, the UNet's and the VAE's upsampling, has
// its own loop.
func (c *CPU) ResizeNearest(dst, x *Tensor) error {
	defer keepAlive(dst, x)
	ss, err := c.storages("ResizeNearest", dst, x)
	if err != nil {
		return err
	}
	d, s := ss[0].F32[dst.offset:], ss[1].F32[x.offset:]
	h, w := x.shape[2], x.shape[3]
	oh, ow := dst.shape[2], dst.shape[3]
	planes := x.shape[0] * x.shape[1]
	if w == 0 || h == 0 || ow == 0 || oh == 0 {
		return nil
	}
	if oh == 2*h && ow == 2*w {
		rows := planes * h
		asm.ParallelFor(rows, rowGrain(4*w), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				in := s[r*w : (r+1)*w]
				out := d[4*r*w : (4*r+2)*w]
				for i, v := range in {
					out[2*i], out[2*i+1] = v, v
				}
				copy(d[(4*r+2)*w:(4*r+4)*w], out)
			}
		})
		return nil
	}
	srcRow := nearestIndex(h, oh)
	srcCol := nearestIndex(w, ow)
	asm.ParallelFor(planes*oh, rowGrain(ow), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			p, y := r/oh, r%oh
			in := s[(p*h+srcRow[y])*w:][:w]
			out := d[r*ow : (r+1)*ow]
			for x, sx := range srcCol {
				out[x] = in[sx]
			}
		}
	})
	return nil
}

// nearestIndex returns, for each of out positions, the source index torch's
// nearest interpolation reads: ⌊i·(in/out)⌋ in float32, clamped to in-1.
func nearestIndex(in, out int) []int {
	scale := float32(in) / float32(out)
	idx := make([]int, out)
	for i := range idx {
		idx[i] = min(int(float32(i)*scale), in-1)
	}
	return idx
}
