package main

import (
	"fmt"
	"time"
)

// sequenceSteps is bench/sequence.c's list: the workloads one process runs
// one after the other, with their items at n = 1000 (per mille of these).
var sequenceSteps = []struct {
	workload string
	items    int
}{
	{"group_limit20", 50000},
	{"chan_spsc", 300000},
	{"select_2_recv", 100000},
	{"chan_pingpong_unbuffered", 5000},
	{"pool_spawn_wait", 100000},
	{"pool_fib30", 2},
	{"skynet_1m", 100000},
	{"pipeline_3stage", 5000},
	{"fanout4_fanin", 50000},
	{"sem_contended", 500000},
	{"group_limit20", 50000},
}

// Registered here: the map's initializer cannot refer to a function that
// reads the map.
func init() {
	workloads["sequence_go_shaped"] = workload{sequenceGoShaped, 1000}
}

// sequenceGoShaped runs the steps in this process and reports each one's
// ns/op as field "seq_NN_<workload>".
func sequenceGoShaped(n int) result {
	extra := map[string]float64{}
	start := time.Now()
	for i, s := range sequenceSteps {
		items := s.items * n / 1000
		if items < 1 {
			items = 1
		}
		res := workloads[s.workload].run(items)
		if res.check != "ok" {
			return result{check: s.workload + ": " + res.check}
		}
		if res.items > 0 {
			items = res.items
		}
		extra[fmt.Sprintf("seq_%02d_%s", i, s.workload)] = float64(res.ns) / float64(items)
	}
	return result{ns: time.Since(start).Nanoseconds(), items: len(sequenceSteps),
		check: "ok", extra: extra}
}
