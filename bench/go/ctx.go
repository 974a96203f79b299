package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// ctxCancelFanout: n children of one cancellable parent, one goroutine
// blocked on each child's Done. Timed from cancel(parent) until every
// waiter has observed the cancellation; creation is outside the timed region.
func ctxCancelFanout(n int) result {
	parent, cancel := context.WithCancel(context.Background())
	children := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	var ready, observed sync.WaitGroup
	ready.Add(n)
	observed.Add(n)
	for i := range children {
		children[i], cancels[i] = context.WithCancel(parent)
		done := children[i].Done() // create the channel before timing starts
		go func() {
			ready.Done()
			<-done
			observed.Done()
		}()
	}
	ready.Wait()

	start := time.Now()
	cancel()
	observed.Wait()
	ns := time.Since(start).Nanoseconds()

	status := "ok"
	for i, child := range children {
		if err := child.Err(); err != context.Canceled && status == "ok" {
			status = fmt.Sprintf("child %d: Err() = %v after cancel", i, err)
		}
		cancels[i]()
	}
	return result{ns: ns, check: status}
}
