package model

import (
	"github.com/sdgo/sdgo/diffusion/pickle"
	"github.com/sdgo/sdgo/diffusion/weights"
)

// OpenPickle opens a PyTorch pickle file (.ckpt, .pt, .pth, .bin) as a
// weights.Source named by the checkpoint's state_dict keys, with package
// pickle's reader in lenient mode: training checkpoints (PyTorch Lightning
// .ckpt files) hold Python objects beside the weights, which are skipped;
// nothing in the file is ever executed. It is what Load uses unless
// Options.OpenPickle says otherwise.
func OpenPickle(path string) (weights.Source, error) {
	c, err := pickle.Open(path, pickle.Options{Lenient: true})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// metadataSource is a Source that also holds the scalar entries stored beside
// the weights (a Lightning checkpoint's global_step, ...), as pickle.Checkpoint does.
type metadataSource interface {
	Metadata() map[string]string
}

// sd2BaseStep is the global_step of Stability's SD 2.0 512-base checkpoint,
// the one epsilon-predicting SD 2 model diffusers recognises by it.
const sd2BaseStep = "875000"

// defaultPrediction is what a single file without a config folder predicts:
// SD 2.x non-inpainting files are the 768-v models (v_prediction) unless their
// global_step is that of the 512-base release, as in diffusers; everything
// else predicts epsilon.
func defaultPrediction(src weights.Source, f Family, inpaint bool) string {
	if f != SD2 || inpaint {
		return Epsilon
	}
	if ms, ok := src.(metadataSource); ok && ms.Metadata()["global_step"] == sd2BaseStep {
		return Epsilon
	}
	return VPrediction
}
