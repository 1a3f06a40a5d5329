package bench

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/weights"
	"github.com/sdgo/sdgo/nn"
	"github.com/sdgo/sdgo/tensor"
	"github.com/x448/float16"
)

// CacheDir is where the benchmarks keep their synthetic checkpoints:
// $SDGO_BENCH_CACHE, else the user's cache directory (sdgo/bench in it), else
// the temporary directory.
func CacheDir() string {
	if d := os.Getenv("SDGO_BENCH_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "sdgo", "bench")
	}
	return filepath.Join(os.TempDir(), "sdgo-bench")
}

// File returns a safetensors checkpoint of the synthetic weights that load asks
// for, written once into CacheDir under key and reused after that: benchmarks
// then load weights as real checkpoints are loaded, used in place from the
// file's mapping, and can evict them as a pipeline does. load builds the model
// from the Params it is given and returns its release function; the first time,
// it is called with a recorder that learns the weights' names and shapes
// without making them.
func (s *Synthetic) File(key string, load func(nn.Params) (release func(), err error)) (*weights.Safetensors, error) {
	dt := s.DType
	if dt == 0 {
		dt = tensor.F16
	}
	path := filepath.Join(CacheDir(), fmt.Sprintf("%s-%s-seed%d.safetensors", key, dt, s.Seed))
	if src, err := weights.OpenSafetensors(path); err == nil {
		return src, nil
	}
	rec := &shapeRecorder{b: s.Backend, dt: dt}
	release, err := load(rec)
	if err != nil {
		return nil, fmt.Errorf("bench: recording %s's weights: %w", key, err)
	}
	release()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := s.write(tmp, rec.infos); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("bench: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("bench: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return weights.OpenSafetensors(path)
}

// write streams the weights named in infos, each made as Synthesize makes it.
// Tensors are made on every core, a window of them ahead of the writer, which
// writes them in the file's order.
func (s *Synthetic) write(f *os.File, infos []safetensors.Info) error {
	w, err := safetensors.NewStreamWriter(f, infos, map[string]string{"format": "pt", "sdgo": "synthetic benchmark weights"})
	if err != nil {
		return err
	}
	order := w.Tensors()
	workers := runtime.GOMAXPROCS(0)
	results := make([]chan []byte, len(order))
	for i := range results {
		results[i] = make(chan []byte, 1)
	}
	sem := make(chan struct{}, 2*workers) // tensors made but not yet written, at most
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i, info := range order {
			select {
			case sem <- struct{}{}:
			case <-stop:
				return
			}
			go func() { results[i] <- s.encode(info) }()
		}
	}()
	for i, info := range order {
		buf := <-results[i]
		<-sem
		if err := w.WriteTensor(info.Name, buf); err != nil {
			return err
		}
	}
	return w.Close()
}

// encode makes a weight's little-endian bytes.
func (s *Synthetic) encode(info safetensors.Info) []byte {
	n := info.Numel()
	value := s.values(info.Name, info.Shape)
	buf := make([]byte, 0, n*info.DType.Size())
	for range n {
		x := value()
		switch info.DType {
		case safetensors.F32:
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		case safetensors.BF16:
			buf = binary.LittleEndian.AppendUint16(buf, uint16(math.Float32bits(x)>>16))
		default:
			buf = binary.LittleEndian.AppendUint16(buf, float16.Fromfloat32(x).Bits())
		}
	}
	return buf
}

// shapeRecorder is an nn.Params that records the weights a model asks for and
// hands back uninitialised tensors (long-lived, so that untouched pages cost no
// memory).
type shapeRecorder struct {
	b     tensor.Backend
	dt    tensor.DType
	infos []safetensors.Info
}

func (r *shapeRecorder) Tensor(name string) (*tensor.Tensor, error) {
	return nil, fmt.Errorf("synthetic weights: %s requested without a shape", name)
}

func (r *shapeRecorder) Synthesize(name string, shape []int) (*tensor.Tensor, error) {
	r.infos = append(r.infos, safetensors.Info{Name: name, DType: fileDType(r.dt), Shape: append([]int(nil), shape...)})
	return tensor.NewLongLived(r.b, r.dt, shape...)
}
