package main

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// poolSpawnWait: n goroutines, each adding one to a shared counter, then
// wait for all of them.
func poolSpawnWait(n int) result {
	var wg sync.WaitGroup
	var ran atomic.Uint64
	start := time.Now()
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			ran.Add(1)
			wg.Done()
		}()
	}
	wg.Wait()
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, check: check("tasks ran", ran.Load(), uint64(n))}
}

const fibSerialBelow = 18

func fibSerial(n int) int {
	if n < 2 {
		return n
	}
	return fibSerial(n-1) + fibSerial(n-2)
}

// fib is fork-join: fib(n-1) runs in a new goroutine, fib(n-2) here.
func fib(n int) int {
	if n < fibSerialBelow {
		return fibSerial(n)
	}
	c := make(chan int, 1)
	go func() { c <- fib(n - 1) }()
	y := fib(n - 2)
	return <-c + y
}

// poolFib30: n fork-join fib(30) computations in a row.
func poolFib30(n int) result {
	bad := 0
	start := time.Now()
	for i := 0; i < n; i++ {
		if fib(30) != 832040 {
			bad++
		}
	}
	ns := time.Since(start).Nanoseconds()
	return result{ns: ns, check: check("wrong results", uint64(bad), 0)}
}

// groupLimit20: n counting tasks through an errgroup limited to 20 at a time.
func groupLimit20(n int) result {
	var g errgroup.Group
	var ran atomic.Uint64
	g.SetLimit(20)
	start := time.Now()
	for i := 0; i < n; i++ {
		g.Go(func() error {
			ran.Add(1)
			return nil
		})
	}
	err := g.Wait()
	ns := time.Since(start).Nanoseconds()
	if err != nil {
		return result{ns: ns, check: "wait: " + err.Error()}
	}
	return result{ns: ns, check: check("tasks ran", ran.Load(), uint64(n))}
}

// poolIdleCPU: wake every P once, let the runtime settle for 100 ms, then
// report the CPU time the idle process burns over one second.
func poolIdleCPU(int) result {
	var wg sync.WaitGroup
	procs := runtime.GOMAXPROCS(0)
	wg.Add(procs)
	for i := 0; i < procs; i++ {
		go func() {
			defer wg.Done()
			fibSerial(20)
		}()
	}
	wg.Wait()
	ns, err := idleSecondCPU()
	if err != nil {
		return result{check: "getrusage: " + err.Error()}
	}
	return result{ns: ns, check: "ok"}
}

// idleSecondCPU lets the process settle for 100 ms, then returns the CPU
// time it burns in the next second.
func idleSecondCPU() (int64, error) {
	time.Sleep(100 * time.Millisecond)
	before, err := cpuTime()
	if err != nil {
		return 0, err
	}
	time.Sleep(time.Second)
	after, err := cpuTime()
	return after - before, err
}

// cpuTime is the process's user + system CPU time in nanoseconds.
func cpuTime() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), nil
}
