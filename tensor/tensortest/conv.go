package tensortest

// Conv2d returns the 2-D convolution (cross-correlation, as torch.nn.Conv2d) of x
// [N,C,H,W] with w [O,C,KH,KW], zero padding pad on every side, the given stride,
// plus bias ([O], or nil), and the output shape [N,O,H',W'].
func Conv2d(x []float32, xShape []int, w []float32, wShape []int, bias []float32, stride, pad int) ([]float32, []int) {
	return Conv2dPadded(x, xShape, w, wShape, bias, stride, pad, pad)
}

// Conv2dPadded is Conv2d with padBefore zero rows and columns above and to the
// left, and padAfter below and to the right.
func Conv2dPadded(x []float32, xShape []int, w []float32, wShape []int, bias []float32, stride, padBefore, padAfter int) ([]float32, []int) {
	n, c, h, wd := xShape[0], xShape[1], xShape[2], xShape[3]
	o, kh, kw := wShape[0], wShape[2], wShape[3]
	ho := (h+padBefore+padAfter-kh)/stride + 1
	wo := (wd+padBefore+padAfter-kw)/stride + 1
	out := make([]float64, n*o*ho*wo)
	for b := range n {
		for oc := range o {
			for oy := range ho {
				for ox := range wo {
					var s float64
					if bias != nil {
						s = float64(bias[oc])
					}
					for ic := range c {
						for ky := range kh {
							iy := oy*stride - padBefore + ky
							if iy < 0 || iy >= h {
								continue
							}
							for kx := range kw {
								ix := ox*stride - padBefore + kx
								if ix < 0 || ix >= wd {
									continue
								}
								s += float64(x[((b*c+ic)*h+iy)*wd+ix]) * float64(w[((oc*c+ic)*kh+ky)*kw+kx])
							}
						}
					}
					out[((b*o+oc)*ho+oy)*wo+ox] = s
				}
			}
		}
	}
	return round(out), []int{n, o, ho, wo}
}
