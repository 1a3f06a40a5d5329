//go:build !(linux && (amd64 || arm64))

package cuda

import (
	"fmt"
	"runtime"
)

// supported reports whether this build can load NVIDIA libraries at all: CUDA
// runs on linux/amd64 and linux/arm64 only.
const supported = false

var errUnsupported = fmt.Errorf("%w: CUDA is not supported on %s/%s", ErrNoDriver, runtime.GOOS, runtime.GOARCH)

func dlopen(string) (uintptr, error) { return 0, errUnsupported }

func dlsym(uintptr, string) (uintptr, error) { return 0, errUnsupported }

func bindFunc(any, uintptr) {}
