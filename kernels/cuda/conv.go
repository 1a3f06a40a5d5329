package cuda

import (
	"math"
	"os"
	"strings"

	"github.com/sdgo/sdgo/tensor"
)

// convEnv names the environment variable that chooses how Conv2d runs in FP16
// and BF16 modes: "implicit" for the tensor-core implicit GEMM of conv.cu,
// "im2col" for im2col + cuBLAS (convGemm), anything else (unset, "auto") for
// the choice of convImplicit. It is read on every call.
const convEnv = "SDGO_CUDA_CONV"

// convImplicit says whether a convolution whose implicit GEMM has blocks
// blocks, on a device with sms multiprocessors, runs on the implicit GEMM, v
// being the value of SDGO_CUDA_CONV (any case, spaces trimmed): "implicit"
// and "im2col" force a path; otherwise the implicit GEMM runs when its grid
// fills the device (at least one block per multiprocessor). Measured on an
// H200 (132 SMs, FP16, conv_tc_gpu_test.go's BenchmarkGPUConvTC): it is 1.2×
// to 5× faster than im2col + cuBLAS from 192 blocks up (the SD UNet's
// 320-channel level and every VAE decoder shape from 128×128 up), level at 128
// blocks, and up to 7× slower on small grids (the UNet's 16×16 and 8×8 levels,
// 40 and 10 blocks, K = 11520: the kernel has no split-K), where cuBLAS wins.
func convImplicit(v string, blocks, sms int) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "implicit":
		return true
	case "im2col":
		return false
	}
	return blocks >= max(sms, 1)
}

// Tiling of conv2d_tc_* (conv.cu).
const (
	convTCM       = 128 // output channels per block
	convTCN       = 128 // output pixels per block
	convTCThreads = 256
	// convTCMaxDim bounds H, W, KH, KW, the stride and the paddings: the kernel
	// packs ky and kx into 16 bits each and marks the K tail with ky = -32768.
	convTCMaxDim = 1 << 14
)

// convTCGrid returns the grid of conv2d_tc_* for oc output channels and ncols
// output pixels (all images), and whether the kernel can take the
// convolution: every index it computes in 32 bits must fit (the input's
// per-image offsets C·H·W, K and the pixel count) and the sizes must stay
// under convTCMaxDim.
func convTCGrid(ch, h, wd, oc, kh, kw, ncols, stride, pad, padEnd int) ([3]uint32, bool) {
	for _, v := range []int{h, wd, kh, kw, stride, pad, padEnd} {
		if v > convTCMaxDim {
			return [3]uint32{}, false
		}
	}
	if ch*h*wd > math.MaxInt32 || ch*kh*kw > math.MaxInt32 || ncols > math.MaxInt32-convTCN {
		return [3]uint32{}, false
	}
	gy := (oc + convTCM - 1) / convTCM
	if gy > 65535 {
		return [3]uint32{}, false
	}
	return [3]uint32{uint32((ncols + convTCN - 1) / convTCN), uint32(gy), 1}, true
}

// convTCVec says whether conv2d_tc_* may copy the weight's rows with 16-byte
// cp.async: a K of a multiple of 8 halves and a 16-byte-aligned weight.
func convTCVec(k int, pw uint64) bool { return k%8 == 0 && pw%16 == 0 }

// convTC runs a convolution in FP16/BF16 mode (dt) as conv.cu's implicit GEMM
// on the tensor cores when convImplicit chooses it (else, and for
// convolutions too large for the kernel's 32-bit indices, as convGemm): the
// weight is converted to a contiguous dt temporary unless it already is one,
// x (at px, F32, contiguous) is rounded to dt as the kernel loads it, the bias
// (F32, or converted to it) is added in the epilogue, and the F32 output d is
// written once.
func (r *run) convTC(d, px uint64, w, bias *tensor.Tensor, dt tensor.DType, nImg, ch, h, wd, oc, kh, kw, ho, wo, stride, pad, padEnd int) error {
	ncols := nImg * ho * wo
	grid, ok := convTCGrid(ch, h, wd, oc, kh, kw, ncols, stride, pad, padEnd)
	if !ok || !convImplicit(os.Getenv(convEnv), int(grid[0])*int(grid[1]), r.d.sms) {
		return r.convGemm(d, px, w, bias, dt, nImg, ch, h, wd, oc, kh, kw, ho, wo, stride, pad)
	}
	pw, err := r.as(w, dt)
	if err != nil {
		return err
	}
	pb, err := r.f32(bias)
	if err != nil {
		return err
	}
	vec := 0
	if convTCVec(ch*kh*kw, pw) {
		vec = 1
	}
	a := newArgs().Ptr(d).Ptr(px).Ptr(pw).Ptr(pb).I32(ch).I32(h).I32(wd).I32(oc).I32(kh).I32(kw).
		I32(ho).I32(wo).I32(stride).I32(pad).I32(ncols).I32(vec)
	r.path = "implicit"
	return r.d.launch("conv2d_tc_"+dtypeName(dt), grid, [3]uint32{convTCThreads, 1, 1}, 0, a)
}
