package asm

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParallelForCoversEachIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 100, 1001} {
		for _, grain := range []int{0, 1, 3, 64, 2000} {
			var mu sync.Mutex
			seen := make([]int, n)
			ParallelFor(n, grain, func(lo, hi int) {
				require.LessOrEqual(t, 0, lo)
				require.LessOrEqual(t, lo, hi)
				mu.Lock()
				for i := lo; i < hi; i++ {
					seen[i]++
				}
				mu.Unlock()
			})
			for i, c := range seen {
				require.Equal(t, 1, c, "n %d grain %d index %d", n, grain, i)
			}
		}
	}
}
