package cuda

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor"
)

// With profiling on, each operation is timed under its name and path; off, no
// time is recorded.
func TestGPUProfile(t *testing.T) {
	b := NewBackend(gpu(t).Device()) // its own profiler, on the shared device
	x, err := tensor.Full(b, tensor.F32, 1, 256, 256)
	require.NoError(t, err)
	defer x.Release()
	b.SetProfiling(true)
	for range 3 {
		y, err := tensor.Add(x, x)
		require.NoError(t, err)
		y.Release()
	}
	z, err := tensor.MatMul(x, x)
	require.NoError(t, err)
	z.Release()
	b.SetProfiling(false)
	y, err := tensor.Add(x, x)
	require.NoError(t, err)
	y.Release()
	ops := map[string]OpTime{}
	for _, o := range b.Profile() {
		ops[o.Op] = o
	}
	require.Equal(t, 3, ops["Binary"].Calls, "%v", ops)
	require.Equal(t, 1, ops["MatMul"].Calls, "%v", ops)
	if os.Getenv("SDGO_EMU_LIB") == "" { // the emulator's events all read the same time
		require.Positive(t, ops["MatMul"].Time)
	}
	b.ResetProfile()
	require.Empty(t, b.Profile())
}

// Without a device, the profile is empty and toggling it is harmless.
func TestProfileOff(t *testing.T) {
	var b Backend
	b.SetProfiling(true)
	b.SetProfiling(false)
	require.Empty(t, b.Profile())
}
