package cuda

import "testing"

// TestTimestepKernelSignature checks TimestepEmbedding's argument list against
// the PTX declaration of timestep_embedding_f32: y, t, n, dim, c, d, flip.
func TestTimestepKernelSignature(t *testing.T) {
	if n, st := ptxParams(t, "timestep_embedding_f32"); n != 7 || len(st) != 0 {
		t.Errorf("timestep_embedding_f32: %d params, structs %v; want 7, none", n, st)
	}
}
