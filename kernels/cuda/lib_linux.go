//go:build linux && (amd64 || arm64)

package cuda

import "github.com/ebitengine/purego"

// supported reports whether this build can load NVIDIA libraries at all.
const supported = true

// dlopen loads the shared library at path (a file name is looked up on the
// dynamic loader's path).
func dlopen(path string) (uintptr, error) {
	return purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
}

// dlsym returns the address of the symbol name in the library h.
func dlsym(h uintptr, name string) (uintptr, error) { return purego.Dlsym(h, name) }

// bindFunc makes the Go function variable fptr call the C function at sym.
func bindFunc(fptr any, sym uintptr) { purego.RegisterFunc(fptr, sym) }
