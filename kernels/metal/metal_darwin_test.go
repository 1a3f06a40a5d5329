//go:build darwin

package metal

import (
	"os"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/tensor"
	"github.com/sdgo/sdgo/tensor/backendtest"
)

// open opens the default Metal device, or skips the test (SDGO_METAL_REQUIRE=1
// makes that a failure, so a Mac run cannot pass by skipping).
func open(t *testing.T) *Backend {
	t.Helper()
	b, err := OpenBackend(0)
	if err != nil {
		if os.Getenv("SDGO_METAL_REQUIRE") != "" {
			t.Fatalf("SDGO_METAL_REQUIRE is set but no Metal device could be opened: %v", err)
		}
		t.Skipf("no Metal device: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing %s: %v", b.Name(), err)
		}
	})
	t.Logf("%s", b.Name())
	return b
}

// TestConformance runs the shared backend suite on the Metal backend: every
// operation against the CPU backend. The backend computes in FP32.
func TestConformance(t *testing.T) {
	backendtest.Run(t, open(t), backendtest.Tolerance{})
}

// TestConformanceFP16 runs the suite with the matrix products on half
// operands: F16 rounding of the operands, FP32 accumulation.
func TestConformanceFP16(t *testing.T) {
	b := open(t)
	b.SetPrecision(FP16)
	backendtest.Run(t, b, backendtest.Tolerance{Sum: 5e-3})
	restore := tensor.FullPrecision(b)
	if b.Precision() != FP32 {
		t.Errorf("under FullPrecision the precision is %v", b.Precision())
	}
	restore()
	if b.Precision() != FP16 {
		t.Errorf("after FullPrecision's restore the precision is %v", b.Precision())
	}
}

// TestOpenDevice opens the backend by name, as --device metal does.
func TestOpenDevice(t *testing.T) {
	open(t) // skips without a device
	b, err := tensor.OpenDevice("metal")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.(*Backend).Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCompileErrorIsReported checks that a compiler error comes back with the
// compiler's message (NSError's localizedDescription).
func TestCompileErrorIsReported(t *testing.T) {
	b := open(t)
	err := onThread(func() error {
		lib, err := b.dev.compileSource("#include <metal_stdlib>\nkernel void broken(device float* x [[buffer(0)]]) { x[0] = no_such_function(1.0f); }\n")
		release(lib)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "no_such_function") {
		t.Errorf("compiling a broken kernel: %v, want the compiler's message naming no_such_function", err)
	}
}

// TestStorageReuse frees and allocates storage of one size class and checks
// that what is written is what is read, and that closing twice is harmless.
func TestStorageReuse(t *testing.T) {
	b := open(t)
	for i := range 3 {
		st, err := b.Alloc(tensor.F32, 1000+i)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float32, st.Len())
		for j := range v {
			v[j] = float32(i*10000 + j)
		}
		if err := b.Write(st, v); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, len(v))
		if err := b.Read(st, 0, got); err != nil {
			t.Fatal(err)
		}
		for j := range v {
			if got[j] != v[j] {
				t.Fatalf("round %d: element %d reads %g, wrote %g", i, j, got[j], v[j])
			}
		}
		b.Free(st)
		b.Free(st) // a second Free is ignored
	}
	if err := b.Synchronize(); err != nil {
		t.Fatal(err)
	}
}
