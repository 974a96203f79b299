// kn-bench-go runs the Go implementation of the workloads described in
// bench/WORKLOADS.md and prints one JSON line per run:
//
//	kn-bench-go --workload NAME --impl go --items N
//
// Exit status: 0 on a verified run, 1 when the run's own check failed,
// 2 for an unknown workload or an impl other than "go".
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"
)

// result is what a workload reports. lat is set by the latency workloads,
// waits (acquires that waited) by sem_blocking.
type result struct {
	ns        int64
	check     string
	lat       []int64
	waits     uint64
	items     int                // when the workload rounds n (skynet_1m)
	releaseNs int64              // blocked_1m
	rssBytes  int64              // blocked_1m
	extra     map[string]float64 // more fields (sequence_go_shaped)
}

type workload struct {
	run          func(n int) result
	defaultItems int
}

var workloads = map[string]workload{
	"chan_spsc":                {chanSPSC, 1000000},
	"chan_mpmc_2p2c":           {mpmc(2, 1024), 1000000},
	"chan_mpmc_4p4c":           {mpmc(4, 1024), 1000000},
	"chan_mpmc_4p4c_cap1":      {mpmc(4, 1), 1000000},
	"chan_mpmc_4p4c_cap0":      {mpmc(4, 0), 1000000},
	"chan_pingpong_unbuffered": {chanPingPong, 200000},
	"select_2_recv":            {select2Recv, 1000000},
	"sem_uncontended":          {semUncontended, 1000000},
	"sem_contended":            {semContended, 1000000},
	"sem_blocking":             {semBlocking, 100000},
	"ctx_cancel_fanout":        {ctxCancelFanout, 10000},
	"mutex_uncontended":        {mutexLoops(1, false), 10000000},
	"mutex_8_contended":        {mutexLoops(lockActors, true), 1000000},
	"rwmutex_read_mostly":      {rwmutexReadMostly, 1000000},
	"cond_pingpong":            {condPingPong, 100000},
	"pool_spawn_wait":          {poolSpawnWait, 1000000},
	"pool_fib30":               {poolFib30, 10},
	"group_limit20":            {groupLimit20, 1000000},
	"pool_idle_cpu":            {poolIdleCPU, 1},
	"generator":                {generatorBench, 1000000},
	"pipeline_3stage":          {pipeline3(0), 1000000},
	"pipeline_3stage_buf":      {pipeline3(64), 1000000},
	"fanout4_fanin":            {fanout4Fanin, 1000000},
	"worker_pool":              {workerPool, 1000000},
	"foreach_per_item":         {foreachPerItem, 1000000},
	"foreach_runners":          {foreachRunners, 1000000},
	"skynet_1m":                {skynet1m, 1000000},
	"fib30_wg":                 {fib30WG, 10},
	"blocked_1m":               {blocked1m, 1000000},
	"net_echo_64":              {netEcho(64, 64), 100000},
	"net_echo_256":             {netEcho(256, 64), 100000},
	"net_echo_1000":            {netEcho(1000, 64), 100000},
	"net_echo_stream":          {netEcho(1, 1<<20), 200},
	"timer_100k":               {sleepMany(false), 100000},
	"timer_100k_cpu":           {sleepMany(true), 100000},
	"timer_100k_idle":          {sleepIdle, 100000},
}

type report struct {
	Workload string  `json:"workload"`
	Impl     string  `json:"impl"`
	Items    int     `json:"items"`
	Ns       int64   `json:"ns"`
	NsPerOp  float64 `json:"ns_per_op"`
	P50      *int64  `json:"p50_ns,omitempty"`
	P99      *int64  `json:"p99_ns,omitempty"`
	P999     *int64  `json:"p999_ns,omitempty"`
	Waits    float64 `json:"waits_per_op,omitempty"`
	Release  float64 `json:"release_ns_per_op,omitempty"`
	RSS      float64 `json:"rss_bytes_per_op,omitempty"`
	PeakRSS  int64   `json:"peak_rss_kb"`
	Check    string  `json:"check"`
}

func main() {
	// The flag package accepts both -name and --name.
	name := flag.String("workload", "", "workload name (bench/WORKLOADS.md)")
	impl := flag.String("impl", "", "implementation; only \"go\" is known")
	items := flag.Int("items", 0, "number of items (0: the workload's default)")
	flag.Parse()

	w, ok := workloads[*name]
	if !ok || *impl != "go" || flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "kn-bench-go: no workload %q for impl %q\n", *name, *impl)
		os.Exit(2)
	}
	n := *items
	if n <= 0 {
		n = w.defaultItems
	}
	res := w.run(n)
	if *name == "pool_idle_cpu" {
		n = 1
	}
	if res.items > 0 {
		n = res.items
	}

	rep := report{
		Workload: *name,
		Impl:     *impl,
		Items:    n,
		Ns:       res.ns,
		NsPerOp:  float64(res.ns) / float64(n),
		Check:    res.check,
		Waits:    float64(res.waits) / float64(n),
		Release:  float64(res.releaseNs) / float64(n),
		RSS:      float64(res.rssBytes) / float64(n),
		PeakRSS:  maxRSS() / 1024,
	}
	if res.lat != nil {
		rep.P50, rep.P99, rep.P999 = percentiles(res.lat)
	}
	out, err := json.Marshal(rep)
	if err == nil && res.extra != nil {
		out, err = withFields(out, res.extra)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kn-bench-go:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
	if res.check != "ok" {
		os.Exit(1)
	}
}

// percentiles returns the nearest-rank p50, p99 and p99.9 of the samples
// (sorting them in place).
func percentiles(s []int64) (p50, p99, p999 *int64) {
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := func(perMille int) *int64 {
		if len(s) == 0 {
			v := int64(0)
			return &v
		}
		// ceil(q*n) - 1, computed in integers.
		i := (len(s)*perMille + 999) / 1000
		if i > 0 {
			i--
		}
		v := s[i]
		return &v
	}
	return rank(500), rank(990), rank(999)
}

// clock is the monotonic time base of the latency workloads: stamps are
// nanoseconds since process start, so they fit an int64 carried with an item.
var clockBase = time.Now()

func stamp() int64 { return int64(time.Since(clockBase)) }

// check returns "ok" when got == want, else a message naming what differed.
func check(what string, got, want uint64) string {
	if got != want {
		return fmt.Sprintf("%s %d, want %d", what, got, want)
	}
	return "ok"
}

// firstFailure returns the first check that is not "ok", or "ok".
func firstFailure(checks ...string) string {
	for _, c := range checks {
		if c != "ok" {
			return c
		}
	}
	return "ok"
}

// sumUpto is 0 + 1 + ... + n-1, wrapping like the consumers' uint64 sums.
func sumUpto(n int) uint64 {
	u := uint64(n)
	if u%2 == 0 {
		return u / 2 * (u - 1)
	}
	return (u - 1) / 2 * u
}

// sumSquaresUpto is 0² + 1² + ... + (n-1)² = (n-1)n(2n-1)/6, wrapping.
// The divisions are done before the products so the result is exact mod 2^64.
func sumSquaresUpto(n int) uint64 {
	if n == 0 {
		return 0
	}
	f := [3]uint64{uint64(n) - 1, uint64(n), 2*uint64(n) - 1}
	for _, d := range []uint64{2, 3} {
		for i := range f {
			if f[i]%d == 0 {
				f[i] /= d
				break
			}
		}
	}
	return f[0] * f[1] * f[2]
}

// split returns the half-open range [lo, hi) of the n items that worker k
// of w handles; the ranges cover 0..n-1 exactly once.
func split(n, w, k int) (lo, hi int) {
	return n * k / w, n * (k + 1) / w
}

// withFields adds fields to a JSON object.
func withFields(obj []byte, fields map[string]float64) ([]byte, error) {
	m := map[string]interface{}{}
	if err := json.Unmarshal(obj, &m); err != nil {
		return nil, err
	}
	for k, v := range fields {
		m[k] = v
	}
	return json.Marshal(m)
}
