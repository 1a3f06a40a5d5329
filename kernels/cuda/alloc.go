package cuda

import (
	"math/bits"
	"sort"
)

// Stats describes a device's memory use through this package's caching
// allocator, in bytes and counts.
type Stats struct {
	InUse       uint64 // bytes held by live allocations (rounded sizes)
	PeakInUse   uint64 // the most InUse has been
	Cached      uint64 // bytes in the free lists, ready for reuse
	CacheLimit  uint64 // the most the free lists may hold
	DriverAlloc int    // cuMemAlloc calls
	DriverFree  int    // cuMemFree calls
	Reused      int    // allocations served from the free lists
}

// minBlock is the smallest allocation, in bytes; every size is a multiple of it,
// which also keeps every allocation 512-byte aligned for vector loads.
const minBlock = 512

// roundBytes returns the size an n-byte request is allocated as: at least
// minBlock, then one of four steps per power of two (at most 25% slack), so that
// requests of nearby sizes share free lists.
func roundBytes(n uint64) uint64 {
	if n <= minBlock {
		return minBlock
	}
	e := bits.Len64(n-1) - 1 // 2^e < n ≤ 2^(e+1)
	step := uint64(1) << max(e-2, bits.TrailingZeros64(minBlock))
	return (n + step - 1) / step * step
}

// block is a device allocation: its address and rounded size.
type block struct {
	ptr  uint64
	size uint64
}

// memCache is the bookkeeping of the caching allocator, apart from the driver:
// free lists keyed by rounded size, bounded by limit bytes in all.
type memCache struct {
	free  map[uint64][]uint64
	live  map[uint64]uint64 // ptr -> rounded size of each live allocation
	stats Stats
}

func newMemCache(limit uint64) *memCache {
	return &memCache{free: map[uint64][]uint64{}, live: map[uint64]uint64{}, stats: Stats{CacheLimit: limit}}
}

// take returns a cached block of the rounded size, if there is one, and counts it
// as in use.
func (c *memCache) take(size uint64) (uint64, bool) {
	l := c.free[size]
	if len(l) == 0 {
		return 0, false
	}
	p := l[len(l)-1]
	c.free[size] = l[:len(l)-1]
	c.stats.Cached -= size
	c.stats.Reused++
	c.used(p, size)
	return p, true
}

// used records a new live block.
func (c *memCache) used(p, size uint64) {
	c.live[p] = size
	c.stats.InUse += size
	c.stats.PeakInUse = max(c.stats.PeakInUse, c.stats.InUse)
}

// put returns the live block p to the free lists and returns the blocks the
// driver must free to keep the lists within the limit: the largest cached blocks
// first, or p itself when it alone exceeds the limit. ok is false when p is not
// a live block (a double free, or a pointer from elsewhere), which changes nothing.
func (c *memCache) put(p uint64) (evict []block, ok bool) {
	size, ok := c.live[p]
	if !ok {
		return nil, false
	}
	delete(c.live, p)
	c.stats.InUse -= size
	if size > c.stats.CacheLimit {
		return []block{{p, size}}, true
	}
	for c.stats.Cached+size > c.stats.CacheLimit {
		evict = append(evict, c.evictLargest())
	}
	c.free[size] = append(c.free[size], p)
	c.stats.Cached += size
	return evict, true
}

// evictLargest removes one block of the largest cached size. Cached must be > 0.
func (c *memCache) evictLargest() block {
	var best uint64
	for s, l := range c.free {
		if len(l) > 0 && s > best {
			best = s
		}
	}
	l := c.free[best]
	b := block{l[len(l)-1], best}
	if len(l) == 1 {
		delete(c.free, best)
	} else {
		c.free[best] = l[:len(l)-1]
	}
	c.stats.Cached -= best
	return b
}

// drain empties the free lists and returns their blocks, largest first.
func (c *memCache) drain() []block {
	var out []block
	for s, l := range c.free {
		for _, p := range l {
			out = append(out, block{p, s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].size > out[j].size })
	c.free = map[uint64][]uint64{}
	c.stats.Cached = 0
	return out
}

// setLimit changes the bound and returns the blocks to free to meet it.
func (c *memCache) setLimit(limit uint64) []block {
	c.stats.CacheLimit = limit
	var evict []block
	for c.stats.Cached > limit {
		evict = append(evict, c.evictLargest())
	}
	return evict
}
