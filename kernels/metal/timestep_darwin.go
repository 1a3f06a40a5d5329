//go:build darwin

package metal

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sdgo/sdgo/tensor"
)

// TimestepEmbedding sets dst [N,dim] to the sinusoidal embedding of the
// timesteps t [N] (see tensor.Backend). Metal has no double, so the dim/2
// frequencies, exp of the exponents, are computed on the host exactly as the
// CPU backend computes them (tensor.TimestepEmbeddingParams.Frequencies) and
// uploaded; the kernel forms each argument t[n]·f[i] as the same float32
// product and takes precise::sin and precise::cos of it in float. The result
// is within a few float ulps (a few 1e-7) of the CPU's, whose sin and cos are
// float64 rounded to float32; computing exp in float instead would put its
// few-ulp error into arguments as large as 1000 and cost up to 1e-4.
func (b *Backend) TimestepEmbedding(dst, t *tensor.Tensor, p tensor.TimestepEmbeddingParams) error {
	ds, ts := dst.Shape(), t.Shape()
	if len(ds) != 2 || len(ts) != 1 || ds[0] != ts[0] || ds[1] < 2 {
		return fmt.Errorf("metal.TimestepEmbedding: %w: %v from timesteps %v (want [N,dim ≥ 2] from [N])", tensor.ErrShape, dst, t)
	}
	n, dim := ds[0], ds[1]
	freqs := p.Frequencies(dim)
	return b.exec("TimestepEmbedding", func(e *encoder) error {
		if n == 0 {
			return nil
		}
		d, err := e.operand(b, dst)
		if err != nil {
			return err
		}
		s, err := e.f32(b, t)
		if err != nil {
			return err
		}
		raw := make([]byte, 4*len(freqs))
		for i, f := range freqs {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
		fBuf, err := e.upload(raw)
		if err != nil {
			return err
		}
		flip := 0
		if p.FlipSinToCos {
			flip = 1
		}
		prm := new(params).i(n, dim, flip, s.off, d.off)
		return e.dispatch1D("timestep_embedding", n*dim, prm, d.buf, s.buf, fBuf)
	})
}
