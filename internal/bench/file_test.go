package bench

import (
	"testing"

	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
)

// A synthetic checkpoint holds what Synthesize makes, is written once and
// reused, and loads through the real weights path.
func TestSyntheticFile(t *testing.T) {
	t.Setenv("SDGO_BENCH_CACHE", t.TempDir())
	cpu := tensor.NewCPU()
	syn := &Synthetic{Backend: cpu, DType: tensor.F16, Seed: 3}
	var w *nn.Linear
	loads := 0
	mk := func(p nn.Params) (func(), error) {
		loads++
		var err error
		if w, err = nn.LoadLinear(nn.Sub(p, "proj"), 300, 257, true); err != nil {
			return nil, err
		}
		return func() { w.Weight.Release(); w.Bias.Release() }, nil
	}
	for range 2 {
		src, err := syn.File("tiny", mk)
		if err != nil {
			t.Fatal(err)
		}
		fromFile, err := src.Load("proj.weight", cpu)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := syn.Synthesize("proj.weight", []int{257, 300})
		if err != nil {
			t.Fatal(err)
		}
		a := fromFile.Storage().(*tensor.CPUStorage).U16
		b := direct.Storage().(*tensor.CPUStorage).U16
		if len(a) != len(b) {
			t.Fatalf("%d elements from the file, %d synthesized", len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("element %d: %#x from the file, %#x synthesized", i, a[i], b[i])
			}
		}
		fromFile.Release()
		direct.Release()
		src.Close()
	}
	if loads != 1 {
		t.Errorf("the model was built %d times to record its weights, want once (the file is reused)", loads)
	}
}
