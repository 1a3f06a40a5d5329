package model

import (
	"sort"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/diffusion/weights"
)

// Stats summarises a Source's tensors as stored.
type Stats struct {
	Tensors int   `json:"tensors"`
	Params  int64 `json:"params"`
	Bytes   int64 `json:"bytes"`
	// DTypes counts parameters per stored dtype.
	DTypes map[safetensors.DType]int64 `json:"dtypes"`
}

// WeightStats counts a Source's tensors, parameters and bytes (from the
// tensors' descriptions; nothing is loaded).
func WeightStats(src weights.Source) Stats {
	s := Stats{DTypes: map[safetensors.DType]int64{}}
	if src == nil {
		return s
	}
	for _, n := range src.Names() {
		info, ok := src.Info(n)
		if !ok {
			continue
		}
		numel := int64(1)
		for _, d := range info.Shape {
			numel *= int64(d)
		}
		s.Tensors++
		s.Params += numel
		s.Bytes += numel * int64(info.DType.Size())
		s.DTypes[info.DType] += numel
	}
	return s
}

// MainDTypes lists the dtypes by the number of parameters they hold, most first.
func (s Stats) MainDTypes() []safetensors.DType {
	var d []safetensors.DType
	for k := range s.DTypes {
		d = append(d, k)
	}
	sort.Slice(d, func(i, j int) bool {
		if s.DTypes[d[i]] != s.DTypes[d[j]] {
			return s.DTypes[d[i]] > s.DTypes[d[j]]
		}
		return d[i] < d[j]
	})
	return d
}
