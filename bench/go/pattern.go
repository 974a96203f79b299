package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// generate sends 0..n-1 into a channel of the given capacity from its own
// goroutine and closes it: the seed's generator.
func generate(n, capacity int) <-chan int {
	out := make(chan int, capacity)
	go func() {
		defer close(out)
		for i := 0; i < n; i++ {
			out <- i
		}
	}()
	return out
}

// generatorBench: the consumer ranges over an unbuffered generator.
func generatorBench(n int) result {
	start := time.Now()
	var count, sum uint64
	for v := range generate(n, 0) {
		count++
		sum += uint64(v)
	}
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, check: firstFailure(
		check("count", count, uint64(n)),
		check("sum", sum, sumUpto(n)))}
}

// generateStamped is generate for items that carry their generation time.
func generateStamped(n, capacity int) <-chan stamped {
	out := make(chan stamped, capacity)
	go func() {
		defer close(out)
		for i := 0; i < n; i++ {
			out <- stamped{i, stamp()}
		}
	}()
	return out
}

// stage is one pipeline step: it applies f to every item of in.
func stage(in <-chan stamped, capacity int, f func(int) int) <-chan stamped {
	out := make(chan stamped, capacity)
	go func() {
		defer close(out)
		for it := range in {
			it.v = f(it.v)
			out <- it
		}
	}()
	return out
}

// pipeline3 returns the workload generator -> x*2 -> x+1 -> x*3 -> consumer
// over channels of the given capacity; the consumer records each item's
// end-to-end latency.
func pipeline3(capacity int) func(n int) result {
	return func(n int) result {
		lat := make([]int64, 0, n)
		start := time.Now()
		out := generateStamped(n, capacity)
		out = stage(out, capacity, func(x int) int { return x * 2 })
		out = stage(out, capacity, func(x int) int { return x + 1 })
		out = stage(out, capacity, func(x int) int { return x * 3 })
		var count, sum uint64
		for it := range out {
			lat = append(lat, stamp()-it.t)
			count++
			sum += uint64(it.v)
		}
		ns := time.Since(start).Nanoseconds()
		// sum of 3(2i+1) over i < n
		want := 6*sumUpto(n) + 3*uint64(n)
		return result{ns: ns, lat: lat, check: firstFailure(
			check("count", count, uint64(n)),
			check("sum", sum, want))}
	}
}

// merge is fan-in: it forwards every input into one channel, closed once
// every input is drained.
func merge(capacity int, ins ...<-chan int) <-chan int {
	out := make(chan int, capacity)
	var wg sync.WaitGroup
	wg.Add(len(ins))
	for _, in := range ins {
		go func(in <-chan int) {
			defer wg.Done()
			for v := range in {
				out <- v
			}
		}(in)
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

// double is a fan-out worker with its own output channel.
func double(in <-chan int, capacity int) <-chan int {
	out := make(chan int, capacity)
	go func() {
		defer close(out)
		for v := range in {
			out <- v * 2
		}
	}()
	return out
}

// fanout4Fanin: generator -> 4 workers (x*2) on one channel -> merge.
func fanout4Fanin(n int) result {
	const workers, capacity = 4, 64
	start := time.Now()
	in := generate(n, capacity)
	outs := make([]<-chan int, workers)
	for k := range outs {
		outs[k] = double(in, capacity)
	}
	var count, sum uint64
	for v := range merge(capacity, outs...) {
		count++
		sum += uint64(v)
	}
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, check: firstFailure(
		check("count", count, uint64(n)),
		check("sum", sum, 2*sumUpto(n)))}
}

// workerPool: a sender feeds n jobs to 4 workers computing x*x; the main
// goroutine collects the n results.
func workerPool(n int) result {
	const workers, capacity = 4, 100
	jobs := make(chan int, capacity)
	results := make(chan int, capacity)
	var wg sync.WaitGroup
	wg.Add(workers)

	start := time.Now()
	for k := 0; k < workers; k++ {
		go func() {
			defer wg.Done()
			for j := range jobs {
				results <- j * j
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := 0; i < n; i++ {
			jobs <- i
		}
	}()
	var sum uint64
	for i := 0; i < n; i++ {
		sum += uint64(<-results)
	}
	ns := time.Since(start).Nanoseconds()
	wg.Wait()
	return result{ns: ns, check: check("sum", sum, sumSquaresUpto(n))}
}

const foreachLimit = 20

// foreachPerItem: the seed's semaphore pattern, a goroutine per item with
// at most 20 in flight, gated by a semaphore.Weighted.
func foreachPerItem(n int) result {
	tokens := semaphore.NewWeighted(foreachLimit)
	ctx := context.Background()
	var wg sync.WaitGroup
	var ran, sum atomic.Uint64

	start := time.Now()
	for i := 0; i < n; i++ {
		if err := tokens.Acquire(ctx, 1); err != nil {
			return result{check: "acquire: " + err.Error()}
		}
		wg.Add(1)
		go func(i int) {
			defer func() {
				tokens.Release(1)
				wg.Done()
			}()
			sum.Add(uint64(i))
			ran.Add(1)
		}(i)
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, check: firstFailure(
		check("count", ran.Load(), uint64(n)),
		check("sum", sum.Load(), sumUpto(n)),
		allReturned(tokens, foreachLimit))}
}

// foreachRunners: min(n, 20) goroutines take indices from a shared counter
// until it passes n (kn_foreach_bounded's algorithm).
func foreachRunners(n int) result {
	var wg sync.WaitGroup
	var next, ran, sum atomic.Uint64
	runners := foreachLimit
	if n < runners {
		runners = n
	}

	start := time.Now()
	wg.Add(runners)
	for k := 0; k < runners; k++ {
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= uint64(n) {
					return
				}
				ran.Add(1)
				sum.Add(i)
			}
		}()
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, check: firstFailure(
		check("count", ran.Load(), uint64(n)),
		check("sum", sum.Load(), sumUpto(n)))}
}
