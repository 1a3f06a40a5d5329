//go:build !darwin

package metal

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/sdgo/sdgo/tensor"
)

// TestNeedsMacOS checks what --device metal says on other systems.
func TestNeedsMacOS(t *testing.T) {
	want := "metal: Metal needs macOS (this is " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if _, err := OpenBackend(0); err == nil || err.Error() != want || !errors.Is(err, ErrNoDevice) {
		t.Errorf("OpenBackend: %v, want %q wrapping ErrNoDevice", err, want)
	}
	if _, err := Open(0); err == nil || err.Error() != want {
		t.Errorf("Open: %v, want %q", err, want)
	}
	_, err := tensor.OpenDevice("metal")
	if err == nil || !strings.Contains(err.Error(), "Metal needs macOS") {
		t.Errorf("tensor.OpenDevice(\"metal\"): %v", err)
	}
}
