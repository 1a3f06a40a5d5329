package cuda

// FullPrecision sets FP32 until restore is called, which puts back the
// precision set before (tensor.FullPrecision: the pipelines run a VAE with
// force_upcast this way).
func (b *Backend) FullPrecision() (restore func()) {
	old := b.Precision()
	b.SetPrecision(FP32)
	return func() { b.SetPrecision(old) }
}
