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

const semThreads = 8

// semContended: 8 goroutines share a semaphore of 20, each doing its share
// of n acquire(1)/release(1) pairs; no token ever runs out.
func semContended(n int) result {
	return semShared(n, 20, func(s *semaphore.Weighted, ctx context.Context,
		lo, hi int, t *tally) error {
		for i := lo; i < hi; i++ {
			if err := s.Acquire(ctx, 1); err != nil {
				return err
			}
			s.Release(1)
			t.pairs++
		}
		return nil
	}, nil)
}

// semBlocking: 8 goroutines share a semaphore of 4; each holds its token
// across a receive from an unbuffered channel that a feeder goroutine sends
// 0..n-1 on. An acquire that cannot take a token at once counts as a wait.
// The start gate: each looper reports on ready once its first try has
// succeeded or failed, and the feeder sends nothing before all have, so at
// least four acquires wait (bench/sem_workloads.c does the same).
func semBlocking(n int) result {
	feed := make(chan int)
	ready := make(chan struct{}, semThreads)
	return semShared(n, 4, func(s *semaphore.Weighted, ctx context.Context,
		lo, hi int, t *tally) error {
		if lo == hi {
			ready <- struct{}{}
		}
		for i := lo; i < hi; i++ {
			took := s.TryAcquire(1)
			if i == lo {
				ready <- struct{}{}
			}
			if !took {
				t.waits++
				if err := s.Acquire(ctx, 1); err != nil {
					return err
				}
			}
			t.sum += uint64(<-feed)
			s.Release(1)
			t.pairs++
		}
		return nil
	}, func() {
		for k := 0; k < semThreads; k++ {
			<-ready
		}
		for i := 0; i < n; i++ {
			feed <- i
		}
	})
}

// tally is what one looper did.
type tally struct {
	pairs, waits, sum uint64
	_                 [40]byte // own cache lines: no false sharing
}

// semShared runs 8 loopers over a semaphore of the given size, each doing
// its share of the n pairs, and the feeder (if any) beside them; the clock
// runs from the first start to the last end.
func semShared(n int, size int64, loop func(*semaphore.Weighted,
	context.Context, int, int, *tally) error, feeder func()) result {
	s := semaphore.NewWeighted(size)
	ctx := context.Background()
	tallies := make([]tally, semThreads)
	errs := make([]error, semThreads)
	var wg sync.WaitGroup
	wg.Add(semThreads)

	start := time.Now()
	if feeder != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			feeder()
		}()
	}
	for k := 0; k < semThreads; k++ {
		go func(k int) {
			defer wg.Done()
			lo, hi := split(n, semThreads, k)
			errs[k] = loop(s, ctx, lo, hi, &tallies[k])
		}(k)
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()

	var all tally
	for k := 0; k < semThreads; k++ {
		if errs[k] != nil {
			return result{check: "acquire: " + errs[k].Error()}
		}
		all.pairs += tallies[k].pairs
		all.waits += tallies[k].waits
		all.sum += tallies[k].sum
	}
	status := firstFailure(check("pairs", all.pairs, uint64(n)),
		allReturned(s, size))
	if feeder != nil && status == "ok" {
		status = check("sum received", all.sum, sumUpto(n))
		if status == "ok" && all.waits == 0 {
			status = "no acquire waited"
		}
	}
	return result{ns: ns, check: status, waits: all.waits}
}

// allReturned checks that every token is back: the whole size can be taken.
func allReturned(s *semaphore.Weighted, size int64) string {
	if !s.TryAcquire(size) {
		return fmt.Sprintf("cannot take all %d tokens after the run", size)
	}
	s.Release(size)
	return "ok"
}
