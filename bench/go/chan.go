package main

import (
	"fmt"
	"sync"
	"time"
)

// chanSPSC: one producer sends 0..n-1 through a channel of capacity 1024;
// the consumer (the main goroutine) checks they arrive in order.
func chanSPSC(n int) result {
	ch := make(chan int, 1024)
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	next := 0
	for v := range ch {
		if v != next {
			return result{check: fmt.Sprintf("received %d, want %d", v, next)}
		}
		next++
	}
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, check: check("count", uint64(next), uint64(n))}
}

// mpmc returns the workload with p producers and p consumers sharing one
// channel of the given capacity; the main goroutine closes it once every
// producer is done.
func mpmc(p, capacity int) func(n int) result {
	return func(n int) result {
		ch := make(chan int, capacity)
		counts := make([]uint64, p)
		sums := make([]uint64, p)
		var producers, consumers sync.WaitGroup
		producers.Add(p)
		consumers.Add(p)

		start := time.Now()
		for k := 0; k < p; k++ {
			go func(k int) {
				defer consumers.Done()
				var c, s uint64
				for v := range ch {
					c++
					s += uint64(v)
				}
				counts[k], sums[k] = c, s
			}(k)
		}
		for k := 0; k < p; k++ {
			go func(lo, hi int) {
				defer producers.Done()
				for i := lo; i < hi; i++ {
					ch <- i
				}
			}(split(n, p, k))
		}
		producers.Wait()
		close(ch)
		consumers.Wait()
		ns := time.Since(start).Nanoseconds()

		var c, s uint64
		for k := 0; k < p; k++ {
			c += counts[k]
			s += sums[k]
		}
		return result{ns: ns, check: firstFailure(
			check("count", c, uint64(n)),
			check("sum", s, sumUpto(n)))}
	}
}

// chanPingPong: n round trips over two unbuffered channels, each timed.
func chanPingPong(n int) result {
	a, b := make(chan int), make(chan int)
	lat := make([]int64, n)
	go func() {
		for v := range a {
			b <- v
		}
	}()
	defer close(a)

	start := time.Now()
	for i := 0; i < n; i++ {
		t := stamp()
		a <- i
		v := <-b
		lat[i] = stamp() - t
		if v != i {
			return result{check: fmt.Sprintf("reply %d, want %d", v, i)}
		}
	}
	return result{ns: time.Since(start).Nanoseconds(), check: "ok", lat: lat}
}

// stamped is an item carrying the time it was sent (or generated).
type stamped struct {
	v int
	t int64
}

// select2Recv: two producers each send their half into their own channel of
// capacity 128 and close it; one receiver selects over both, dropping a
// channel from the select (nil) once it is closed.
// selStampEvery: every 16th value carries its send time (bench/kanal_chan.c
// says why).
const selStampEvery = 16

func select2Recv(n int) result {
	a, b := make(chan stamped, 128), make(chan stamped, 128)
	lat := make([]int64, 0, n)
	produce := func(ch chan<- stamped, lo, hi int) {
		for i := lo; i < hi; i++ {
			var t int64
			if i%selStampEvery == 0 {
				t = stamp()
			}
			ch <- stamped{i, t}
		}
		close(ch)
	}

	start := time.Now()
	go produce(a, 0, n/2)
	go produce(b, n/2, n)
	var count, sum uint64
	for a != nil || b != nil {
		var it stamped
		var ok bool
		select {
		case it, ok = <-a:
			if !ok {
				a = nil
				continue
			}
		case it, ok = <-b:
			if !ok {
				b = nil
				continue
			}
		}
		if it.t != 0 {
			lat = append(lat, stamp()-it.t)
		}
		count++
		sum += uint64(it.v)
	}
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, lat: lat, check: firstFailure(
		check("count", count, uint64(n)),
		check("sum", sum, sumUpto(n)))}
}
