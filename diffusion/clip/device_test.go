package clip

// The fixture tests run on $SDGO_TEST_DEVICE when it names a device
// (internal/fixture.Backend); the CUDA backend registers itself.
import _ "github.com/sdgo/sdgo/kernels/cuda"
