package asm

import (
	"runtime"
	"sync"
)

// ParallelFor calls fn over [0,n) split into contiguous ranges [lo,hi), on up to
// GOMAXPROCS goroutines. A range holds at least grain items unless n is smaller;
// when only one range results, fn runs on the calling goroutine. It returns when
// every call has returned.
func ParallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	workers := runtime.GOMAXPROCS(0)
	if w := n / grain; w < workers {
		workers = w
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		lo, hi := n*w/workers, n*(w+1)/workers
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(0, n/workers)
	wg.Wait()
}
