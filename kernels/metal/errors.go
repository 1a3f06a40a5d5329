package metal

import "errors"

var (
	// ErrNoDevice is wrapped by the errors of Open when there is no Metal
	// device: not macOS, Metal.framework missing, or no GPU.
	ErrNoDevice = errors.New("metal: no Metal device")
	// ErrUnsupported is wrapped by the errors of operations the kernels do not
	// cover (an index beyond 32 bits, a head size beyond what attention holds in
	// registers, more than 8 dimensions after coalescing).
	ErrUnsupported = errors.New("metal: unsupported")
)
