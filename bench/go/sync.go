package main

import (
	"sync"
	"time"
)

// The lock workloads (bench/sync_workloads.c does the same over kanal's
// and pthread's locks).

const (
	lockActors   = 8
	sectionSteps = 32  // the contended section's multiply-add chain
	writeEvery   = 101 // rwmutex_read_mostly: one write per 100 reads
)

// guarded is what the locks protect, on its own cache lines.
type guarded struct {
	_     [64]byte
	count uint64
	acc   uint64
	a, b  uint64
	turn  int
	_     [64]byte
}

func (g *guarded) work() {
	x := g.acc
	for k := 0; k < sectionSteps; k++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	g.acc = x
}

// actors runs body(k, share) on n goroutines (n == 1: on this one), timed
// from the first start to the last end.
func actors(n, items int, body func(k, lo, hi int)) int64 {
	start := time.Now()
	if n == 1 {
		body(0, 0, items)
	} else {
		var wg sync.WaitGroup
		wg.Add(n)
		for k := 0; k < n; k++ {
			go func(k int) {
				defer wg.Done()
				lo, hi := split(items, n, k)
				body(k, lo, hi)
			}(k)
		}
		wg.Wait()
	}
	return time.Since(start).Nanoseconds()
}

// mutexLoops: n goroutines share one mutex; each section does the 50 ns
// work (work) or none (mutex_uncontended), then counts.
func mutexLoops(n int, work bool) func(int) result {
	return func(items int) result {
		var mu sync.Mutex
		g := &guarded{}
		ns := actors(n, items, func(k, lo, hi int) {
			for i := lo; i < hi; i++ {
				mu.Lock()
				if work {
					g.work()
				}
				g.count++
				mu.Unlock()
			}
		})
		return result{ns: ns, check: check("sections", g.count, uint64(items))}
	}
}

// rwmutexReadMostly: actor k's i-th section (counting from 0 in its
// share) writes when (i + k) % 101 == 0, else reads.
func rwmutexReadMostly(items int) result {
	var rw sync.RWMutex
	g := &guarded{}
	torn := make([]uint64, lockActors*8)
	ns := actors(lockActors, items, func(k, lo, hi int) {
		for i := 0; i < hi-lo; i++ {
			if (i+k)%writeEvery == 0 {
				rw.Lock()
				g.a++
				g.b++
				rw.Unlock()
			} else {
				rw.RLock()
				if g.a != g.b {
					torn[k*8]++
				}
				rw.RUnlock()
			}
		}
	})
	var writes, bad uint64
	for k := 0; k < lockActors; k++ {
		lo, hi := split(items, lockActors, k)
		for i := 0; i < hi-lo; i++ {
			if (i+k)%writeEvery == 0 {
				writes++
			}
		}
		bad += torn[k*8]
	}
	return result{ns: ns, check: firstFailure(check("torn reads", bad, 0),
		check("pair difference", g.a-g.b, 0), check("writes", g.a, writes))}
}

// condPingPong: two goroutines pass the turn back and forth, each taking
// n turns, through one sync.Cond on one mutex.
func condPingPong(items int) result {
	var mu sync.Mutex
	c := sync.NewCond(&mu)
	g := &guarded{}
	ns := actors(2, items, func(k, _, _ int) { // each takes every turn of its own
		mu.Lock()
		for i := 0; i < items; i++ {
			for g.turn != k {
				c.Wait()
			}
			g.turn = 1 - k
			g.count++
			c.Signal()
		}
		mu.Unlock()
	})
	return result{ns: ns, check: check("turns", g.count, 2*uint64(items))}
}
