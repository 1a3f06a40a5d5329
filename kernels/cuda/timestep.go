package cuda

import (
	"fmt"

	"github.com/sdgo/sdgo/tensor"
)

// TimestepEmbedding sets dst [N,dim] to the sinusoidal embedding of the
// timesteps t [N] (see tensor.Backend). The kernel computes the frequencies
// from tensor.TimestepEmbeddingParams.ExponentTerms with IEEE float products and
// quotients, and exp, sin and cos in double rounded to float, as the CPU
// backend does: the two agree bit for bit (but for the rare double result of
// exp, sin or cos that the device's and Go's libraries, each within an ulp or
// two of double, round to different sides of a float).
func (b *Backend) TimestepEmbedding(dst, t *tensor.Tensor, p tensor.TimestepEmbeddingParams) error {
	return b.exec("TimestepEmbedding", func(r *run) error {
		ds, ts := dst.Shape(), t.Shape()
		if len(ds) != 2 || len(ts) != 1 || ds[0] != ts[0] || ds[1] < 2 {
			return fmt.Errorf("%w: %v from timesteps %v (want [N,dim ≥ 2] from [N])", tensor.ErrShape, dst, t)
		}
		n, dim := ds[0], ds[1]
		if n == 0 {
			return nil
		}
		d, in, err := r.dstF32(dst, t)
		if err != nil {
			return err
		}
		s := in[0]
		c, div := p.ExponentTerms(dim)
		flip := 0
		if p.FlipSinToCos {
			flip = 1
		}
		a := newArgs().Ptr(d).Ptr(s).I64(n).I64(dim).F32(c).F32(div).I32(flip)
		return r.launch1D("timestep_embedding_f32", n*dim, a)
	})
}
