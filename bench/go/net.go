package main

// net_echo_N: this process serves on 127.0.0.1 (net, a goroutine per
// connection); the same client as kanal's (kn-net-client, a separate
// process, beside kn-bench: $KN_NET_CLIENT or ../bench/kn-net-client from
// this binary) makes the round trips and hands back the elapsed time and
// each round trip's latency. timer_100k: goroutines each time.Sleep a
// random 1-10 ms once (the same draws as kanal's); lateness as latency.

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

func clientPath() string {
	if p := os.Getenv("KN_NET_CLIENT"); p != "" {
		return p
	}
	exe, err := os.Executable()
	if err != nil {
		return "kn-net-client"
	}
	return filepath.Join(filepath.Dir(exe), "..", "bench", "kn-net-client")
}

func echoConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

func netEcho(conns, size int) func(n int) result {
	return func(n int) result {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return result{check: "listen: " + err.Error()}
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go echoConn(c)
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		r, w, err := os.Pipe()
		if err != nil {
			return result{check: "pipe: " + err.Error()}
		}
		cmd := exec.Command(clientPath(), fmt.Sprint(port), fmt.Sprint(conns),
			fmt.Sprint(n), fmt.Sprint(size))
		cmd.Stderr = os.Stderr
		cmd.ExtraFiles = []*os.File{w} // fd 3
		if err := cmd.Start(); err != nil {
			return result{check: "client: " + err.Error()}
		}
		w.Close()
		var head [2]uint64
		bad := binary.Read(r, binary.LittleEndian, &head) != nil
		var lat []int64
		if !bad {
			raw := make([]uint64, head[1])
			bad = binary.Read(r, binary.LittleEndian, raw) != nil
			lat = make([]int64, len(raw))
			for i, v := range raw {
				lat[i] = int64(v)
			}
		}
		io.Copy(io.Discard, r)
		r.Close()
		if cmd.Wait() != nil || bad {
			return result{check: "the client failed (see stderr)"}
		}
		return result{ns: int64(head[0]), lat: lat, check: "ok", items: int(head[1])}
	}
}

func sleepMany(cpu bool) func(n int) result {
	return func(n int) result {
		lat := make([]int64, n)
		var wg sync.WaitGroup
		x := uint64(88172645463325252)
		wg.Add(n)
		t0 := time.Now()
		c0, _ := cpuTime()
		for i := 0; i < n; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			d := time.Duration(1000000 + x%9000000)
			go func(i int) {
				deadline := time.Now().Add(d)
				time.Sleep(d)
				lat[i] = int64(time.Since(deadline))
				wg.Done()
			}(i)
		}
		wg.Wait()
		ns := int64(time.Since(t0))
		if cpu {
			c1, _ := cpuTime()
			ns = c1 - c0
		}
		runtime.KeepAlive(lat)
		return result{ns: ns, lat: lat, check: "ok"}
	}
}

// timer_100k_idle: n goroutines asleep (a timer of a minute plus the draw
// of timer_100k, in a select with a done channel) while the process's CPU
// time is measured over one second, once all have started and 100 ms have
// passed; then done is closed and they all wake. ns: CPU ns in that second.
func sleepIdle(n int) result {
	var wg, started sync.WaitGroup
	done := make(chan struct{})
	x := uint64(88172645463325252)
	bad := false
	var mu sync.Mutex
	wg.Add(n)
	started.Add(n)
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		d := time.Minute + time.Duration(x%9000000)
		go func() {
			defer wg.Done()
			t := time.NewTimer(d)
			started.Done()
			select {
			case <-t.C:
				mu.Lock()
				bad = true
				mu.Unlock()
			case <-done:
				t.Stop()
			}
		}()
	}
	started.Wait()
	ns, err := idleSecondCPU()
	close(done)
	wg.Wait()
	if err != nil {
		return result{check: "getrusage: " + err.Error()}
	}
	if bad {
		return result{check: "a sleeper's timer fired"}
	}
	return result{ns: ns, items: 1, check: "ok"}
}
