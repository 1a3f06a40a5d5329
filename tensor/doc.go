// Package tensor holds sdgo's n-dimensional arrays, the operations Stable
// Diffusion needs on them, the Backend interface that runs those operations on a
// device, and the CPU backend.
//
// # Tensors
//
// A Tensor is an element type (F32, F16 or BF16), a shape, strides and an offset
// into a Storage: a flat buffer owned by a Backend. Strides count elements, not
// bytes, and may be 0 for a dimension that is broadcast. A tensor's metadata never
// changes; every operation returns a new tensor.
//
// Create tensors with New (uninitialised), Zeros, Full, FromFloat32 and FromBits;
// read them back with Float32s, which works for any dtype, layout and backend.
//
// # Views
//
// Reshape (when the strides allow it), Permute, Transpose, Narrow, Slice,
// Unsqueeze and Expand return views: new tensors over the same storage with other
// shapes, strides and offsets, made without copying. Contiguous returns a view of
// a tensor already in row-major order and a copy otherwise; To converts to another
// dtype, always as a contiguous copy. BroadcastShapes gives the NumPy broadcast of
// two shapes, and the binary operations broadcast their operands through Expand.
//
// Operations accept views. Those that need row-major input (the norms, Softmax,
// GEGLU, Upsample2x, ResizeNearest, Moments, TimestepEmbedding and the unary
// functions) copy a strided input to a contiguous temporary and release it
// before they return; Copy, Concat and the binary operations read strided and
// broadcast operands in place.
//
// # Backends
//
// A Backend allocates storage and runs the operations. The package-level
// functions (Add, SiLU, GroupNorm, Concat, ...) check shapes, dtypes and that
// every operand lives on the same backend, allocate the result with New on that
// backend and call the Backend method, which may then assume valid arguments. The
// CPU backend (NewCPU) is in this package and runs the kernels of package
// kernels/asm over all cores; the CUDA and Metal backends implement the same
// interface in their own packages, so that code above this package never knows
// which one runs.
//
// Activations are computed in F32: F16 and BF16 inputs of element-wise operations,
// norms, Softmax, GEGLU, the resizes, Moments and TimestepEmbedding's timesteps
// are widened first, and their results are F32. Parameters (norm weights,
// embedding tables, matrix operands) keep the dtype they are stored in and are
// widened inside the kernels; Concat keeps its inputs' dtype.
//
// # Allocation reuse
//
// Release hands a tensor's storage back to its backend once the tensor and every
// view of it have been released (the storage is reference-counted; a view keeps
// it alive). The CPU backend takes storage from size-classed free lists
// (sync.Pool, four classes per power of two, so at most 25% of a buffer is slack)
// and Release returns it there, so a denoising step that releases its
// intermediates reuses the same buffers step after step instead of handing the
// garbage collector hundreds of megabytes per step. Releasing is optional: a
// tensor that is never released is garbage-collected like any value, and since
// the pools hold memory only between collections, reuse never pins memory that
// the program no longer needs. Release is idempotent.
//
// # Errors and panics
//
// Bad input is an error, never a panic. The errors wrap one of ErrShape
// (shapes that do not match or broadcast, a bad reshape), ErrDType (a dtype an
// operation cannot take), ErrRange (an axis, index or slice bound out of range)
// and ErrBackend (operands on different backends, storage of another backend), so
// callers can test them with errors.Is; their text names the operation and the
// operands' dtypes and shapes, e.g.
//
//	tensor.Add: shape mismatch: F32[2 3] and F32[4] do not broadcast
//
// Mistakes in the calling program panic, as in the standard library: passing a
// nil tensor where one is required, and using a tensor after Release. The
// operations check every tensor they are given and panic with the operation's
// name ("tensor.Add: F32[2 3] used after Release"); the methods of a released
// Tensor itself are not checked and may fail in any way. A Backend method called
// directly with arguments that the package-level functions would have rejected
// may panic too.
package tensor
