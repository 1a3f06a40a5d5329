package tensor

// Storage is a flat buffer of elements of one dtype owned by a backend.
type Storage interface {
	Backend() Backend
	DType() DType
	// Len returns the number of elements.
	Len() int
}

// UnaryOp names an element-wise function.
type UnaryOp uint8

// The element-wise functions Stable Diffusion uses.
const (
	OpSiLU      UnaryOp = iota + 1 // x·sigmoid(x)
	OpGELU                         // exact GELU: x/2·(1+erf(x/√2))
	OpGELUTanh                     // tanh approximation of GELU
	OpQuickGELU                    // x·sigmoid(1.702x)
	OpExp                          // eˣ
)

// BinaryOp names an element-wise function of two tensors.
type BinaryOp uint8

// The element-wise binary functions.
const (
	OpAdd BinaryOp = iota + 1
	OpSub
	OpMul
	OpDiv
)

// AttentionMode chooses how scaled-dot-product attention bounds its memory.
type AttentionMode uint8

const (
	// AttentionFlash streams over blocks of keys with an online softmax, never
	// holding more than a block of scores per query block (the default).
	AttentionFlash AttentionMode = iota
	// AttentionSliced computes full rows of scores for a slice of queries at a time,
	// as diffusers' sliced attention does.
	AttentionSliced
)

// AttentionParams configures Attention. Zero values choose defaults.
type AttentionParams struct {
	Scale  float32 // multiplies q·k; 0 means 1/√d
	Mode   AttentionMode
	BlockQ int // queries per block (flash) or per slice (sliced); 0 chooses (64 on the CPU)
	BlockK int // keys per block (flash); 0 chooses (256 on the CPU)
	// Causal lets query i attend only to keys 0..i (torch's is_causal, aligned at
	// the top left), as CLIP's text encoder needs.
	Causal bool
}

// Conv2dParams configures Conv2d.
type Conv2dParams struct {
	Stride  int // 0 means 1
	Padding int // zero padding on every side
	// PadEnd adds zero rows below and zero columns to the right, on top of
	// Padding: the VAE encoder's Downsample2D pads (0,1,0,1) before a stride-2,
	// unpadded convolution.
	PadEnd int
}

// TimestepEmbeddingParams configures TimestepEmbedding: diffusers'
// get_timestep_embedding with its flip_sin_to_cos and downscale_freq_shift.
type TimestepEmbeddingParams struct {
	// FlipSinToCos puts the cosines first: [cos, sin] rather than [sin, cos].
	FlipSinToCos bool
	// FreqShift is diffusers' downscale_freq_shift: frequency i of the half =
	// dim/2 frequencies is exp(−ln(10000)·i/(half − FreqShift)).
	FreqShift float64
}

// Backend runs tensor operations on one device. The CPU backend is in this package;
// the CUDA and Metal backends implement the same interface in their own packages.
//
// The methods are the backend side of the package-level operations, which check
// shapes and dtypes, allocate the result and then call them: a backend may assume
// valid, matching shapes. Unless a method says otherwise, dst is a contiguous F32
// tensor of the result's shape that the method overwrites, and the inputs are
// contiguous F32 tensors on the same backend.
type Backend interface {
	// Name identifies the backend and its device, e.g. "cpu (avx2)".
	Name() string

	// Alloc returns uninitialised storage for n elements of dt.
	Alloc(dt DType, n int) (Storage, error)
	// Free hands storage back for reuse; it must not be used afterwards.
	Free(s Storage)
	// Write copies src ([]float32 for F32 storage, []uint16 bit patterns for F16
	// and BF16) into the start of dst.
	Write(dst Storage, src any) error
	// Read copies len(dst) elements of src from element off into dst ([]float32
	// for F32 storage, []uint16 for F16 and BF16).
	Read(src Storage, off int, dst any) error
	// Fill sets every element of the contiguous tensor dst to v.
	Fill(dst *Tensor, v float32) error
	// Copy copies src (any strides, any dtype) into the contiguous dst of the same
	// shape, converting the dtype (rounding to nearest even when narrowing).
	Copy(dst, src *Tensor) error

	// Unary sets dst = op(x).
	Unary(dst, x *Tensor, op UnaryOp) error
	// Binary sets dst = op(a, b); a and b have dst's shape but any strides, so
	// broadcast operands arrive as views with zero strides.
	Binary(dst, a, b *Tensor, op BinaryOp) error
	// Affine sets dst = x·scale + shift.
	Affine(dst, x *Tensor, scale, shift float32) error
	// Clamp sets dst = min(max(x, lo), hi); NaN stays NaN.
	Clamp(dst, x *Tensor, lo, hi float32) error

	// MatMul sets dst[i] = alpha·a[i]·b[i] + bias for every batch index i: a is
	// [B,M,K] or [1,M,K], b is [B,K,N] or [1,K,N] (a batch of 1, or a batch stride
	// of 0, is shared by the batch), dst [B,M,N], bias [N] or nil, added to every
	// row. a, b and bias may be of any dtype (F16 and BF16 are widened in the
	// kernel, never copied whole: b is typically a checkpoint's weight). a and b
	// may be strided views with any batch stride in which one of the last two
	// strides is 1 (a transposed operand needs no copy) and rows do not overlap;
	// bias may be strided; dst may be a view whose last stride is 1.
	MatMul(dst, a, b, bias *Tensor, alpha float32) error
	// Conv2d sets dst = conv(x, w) + bias (cross-correlation, as torch) on NCHW
	// tensors: x [N,C,H,W] F32, w [O,C,KH,KW] of any dtype, bias [O] of any dtype
	// or nil, dst [N,O,H',W'] with H' = (H+2·Padding+PadEnd-KH)/Stride+1, and W'
	// likewise.
	Conv2d(dst, x, w, bias *Tensor, p Conv2dParams) error
	// GroupNorm normalises x [N,C,...] over groups of C/groups channels, then
	// applies the per-channel gamma and beta ([C], any dtype), then SiLU if silu.
	GroupNorm(dst, x, gamma, beta *Tensor, groups int, eps float32, silu bool) error
	// LayerNorm normalises x over its last axis and applies gamma and beta (any
	// dtype, the last axis's length; either may be nil for 1 and 0).
	LayerNorm(dst, x, gamma, beta *Tensor, eps float32) error
	// Softmax sets dst to the softmax of x over its last axis.
	Softmax(dst, x *Tensor) error
	// Attention sets dst = softmax(q·kᵀ·scale)·v per batch and head: q is [B,H,Lq,D],
	// k [B,H,Lk,D], v [B,H,Lk,Dv] with Lk ≥ 1, dst [B,H,Lq,Dv]. q, k and v may be of
	// any dtype; q, k, v and dst may be strided views with any batch and head
	// strides whose last stride is 1 and whose rows do not overlap (so [B,L,H,D]
	// layouts need no copy). The Lq×Lk scores never exist whole: scratch is
	// BlockQ·BlockK scores per worker in flash mode, BlockQ·Lk in sliced mode.
	Attention(dst, q, k, v *Tensor, p AttentionParams) error
	// GEGLU sets dst[..., i] = x[..., i]·gelu(x[..., n+i]) for x [..., 2n], dst [..., n].
	GEGLU(dst, x *Tensor) error
	// Concat writes xs one after another along axis into dst; xs may be strided and
	// of any dtype, and dst has the dtype of the inputs (converted if they differ).
	Concat(dst *Tensor, xs []*Tensor, axis int) error
	// ResizeNearest sets dst [N,C,H',W'] to the nearest-neighbour resampling of
	// x [N,C,H,W], as torch's interpolate(mode="nearest"): dst[i] = x[⌊i·H/H'⌋]
	// with the ratio computed in float32.
	ResizeNearest(dst, x *Tensor) error
	// Embedding sets row i of dst [len(ids),D] to row ids[i] of table [V,D] (any
	// dtype); every id is in [0,V).
	Embedding(dst, table *Tensor, ids []int) error
	// Moments sets mean and variance (population, divided by n) of x over its last
	// n elements of each of the leading rows: x is viewed as [rows, n], mean and
	// variance are [rows].
	Moments(mean, variance, x *Tensor) error
	// TimestepEmbedding sets dst [N,dim] to the sinusoidal embedding of the
	// timesteps t [N] (dim ≥ 2): with half = dim/2 and the frequencies
	// f = p.Frequencies(dim), row n is [sin(t[n]·f), cos(t[n]·f)] ([cos, sin]
	// when p.FlipSinToCos), then a zero column when dim is odd. Each argument
	// t[n]·f[i] is a float32 product; the CPU computes exp, sin and cos in float64
	// and rounds to float32, and a backend that does the same (CUDA) agrees with
	// it bit for bit.
	TimestepEmbedding(dst, t *Tensor, p TimestepEmbeddingParams) error
}
