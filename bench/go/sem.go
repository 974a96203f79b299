package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// semUncontended: one goroutine, n acquire(1)/release(1) pairs on a
// semaphore of size 1.
func semUncontended(n int) result {
	s := semaphore.NewWeighted(1)
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := s.Acquire(ctx, 1); err != nil {
			return result{check: "acquire: " + err.Error()}
		}
		s.Release(1)
	}
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, check: allReturned(s, 1)}
}

// semShared returns the workload where 8 goroutines share a semaphore of the
// given size, each doing its share of n acquire(1)/release(1) pairs. With
// size 20 no token ever runs out (sem_contended); with size 4 half of the
// goroutines wait at any time (sem_blocking).
func semShared(size int64) func(n int) result {
	const threads = 8
	return func(n int) result {
		s := semaphore.NewWeighted(size)
		ctx := context.Background()
		pairs := make([]uint64, threads)
		errs := make([]error, threads)
		var wg sync.WaitGroup
		wg.Add(threads)

		start := time.Now()
		for k := 0; k < threads; k++ {
			go func(k, lo, hi int) {
				defer wg.Done()
				for i := lo; i < hi; i++ {
					if err := s.Acquire(ctx, 1); err != nil {
						errs[k] = err
						return
					}
					s.Release(1)
				}
				pairs[k] = uint64(hi - lo)
			}(k, n*k/threads, n*(k+1)/threads)
		}
		wg.Wait()
		ns := time.Since(start).Nanoseconds()

		var total uint64
		for k := 0; k < threads; k++ {
			if errs[k] != nil {
				return result{check: "acquire: " + errs[k].Error()}
			}
			total += pairs[k]
		}
		return result{ns: ns, check: firstFailure(
			check("pairs", total, uint64(n)),
			allReturned(s, size))}
	}
}

// allReturned checks that every token is back: the whole size can be taken.
func allReturned(s *semaphore.Weighted, size int64) string {
	if !s.TryAcquire(size) {
		return fmt.Sprintf("cannot take all %d tokens after the run", size)
	}
	s.Release(size)
	return "ok"
}
