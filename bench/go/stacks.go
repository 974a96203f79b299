package main

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// skynet: Go's skynet benchmark; each goroutine for num's subtree of size
// leaves starts 10 children that send their sums to a channel of capacity
// 10. n leaves, rounded down to a power of ten (at least 10).
func skynet(c chan int, num, size int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int, 10)
	sub := size / 10
	for i := 0; i < 10; i++ {
		go skynet(rc, num+i*sub, sub)
	}
	sum := 0
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	c <- sum
}

func skynet1m(n int) result {
	size := 10
	for size*10 <= n {
		size *= 10
	}
	c := make(chan int, 1)
	start := time.Now()
	go skynet(c, 0, size)
	sum := <-c
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, items: size,
		check: check("skynet sum", uint64(sum), uint64(size*(size-1)/2))}
}

// fibWG: fib(n-1) in a new goroutine that marks a WaitGroup, fib(n-2)
// here, then Wait.
func fibWG(n int) int {
	if n < fibSerialBelow {
		return fibSerial(n)
	}
	var wg sync.WaitGroup
	var x int
	wg.Add(1)
	go func() {
		x = fibWG(n - 1)
		wg.Done()
	}()
	y := fibWG(n - 2)
	wg.Wait()
	return x + y
}

func fib30WG(n int) result {
	bad := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		if fibWG(30) != 832040 {
			bad++
		}
	}
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, check: check("wrong results", uint64(bad), 0)}
}

// maxRSS is the process's peak resident set in bytes.
func maxRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

// blocked1m: n goroutines each blocked receiving from one channel, then
// close. ns: spawn until all have started; release: close until the
// WaitGroup's Wait returns; rss: peak RSS growth per goroutine.
func blocked1m(n int) result {
	ch := make(chan int)
	var wg sync.WaitGroup
	var entered, closed atomic.Uint64
	rss0 := maxRSS()
	wg.Add(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			entered.Add(1)
			if _, ok := <-ch; !ok {
				closed.Add(1)
			}
			wg.Done()
		}()
	}
	for entered.Load() < uint64(n) {
		time.Sleep(100 * time.Microsecond)
	}
	mid := time.Now()
	close(ch)
	wg.Wait()
	return result{ns: mid.Sub(start).Nanoseconds(),
		releaseNs: time.Since(mid).Nanoseconds(),
		rssBytes:  maxRSS() - rss0,
		check:     check("receives that saw the close", closed.Load(), uint64(n))}
}
