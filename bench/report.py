#!/usr/bin/env python3
"""Regenerate BENCHMARKS.md and bench/plot/*.png from bench/results/.

Reads latest.json (the list of median records bench/run.py writes) and
meta.json beside it; nothing here measures. Plots need gnuplot (Debian
gnuplot-nox); without it the report says so and carries no plots.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no bench/__pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (workload list and number formatting)

ROOT = run.ROOT
IDLE = "pool_idle_cpu"
TIMER_IDLE = "timer_100k_idle"
IDLES = (IDLE, TIMER_IDLE)  # CPU burnt per idle second, not rates
SEQUENCE = "sequence_go_shaped"
IDLE_LIMIT_NS = 1e7  # CPU ns per idle second: 1% of one core


# The kanal impls: actors on OS threads, and Go-shaped (every actor a kn_go
# task, bench/kanal_go.h). The tables give the ratios of both to the peers.
KANAL_IMPLS = ["kanal", "kanal_go"]

# Library features: a kanal impl run with an option its peers have no
# counterpart for, against the same kanal impl without it. No target, no
# ratio to a peer: a table of their own.
FEATURES = [("kanal_batched", "kanal"), ("kanal_go_batched", "kanal_go")]


class Target:
    """A goal of an issue, evaluated on the kanal impl named by impl. kind
    "peer": impl/peer throughput >= need on all CPUs; "pinned": impl on one
    CPU over impl on all CPUs >= need; "idle": impl's ns_per_op <
    IDLE_LIMIT_NS; "max": impl's metric (a record field) <= need, no peer
    (allocs_per_op: none per request); "lower": impl's metric (a record field, lower is
    better: rss_bytes_per_op, p99_ns, ...) <= need x peer's;
    "sequence": every step of impl's sequence_go_shaped run within need x
    that workload's own (fresh-process) ns_per_op; "zero": impl's metric
    (a count per op, e.g. steady_syscalls_per_op) is 0. Every goal against go uses kanal_go (the program shaped
    as Go's: every actor a task, as Go's are goroutines) wherever the
    workload has one; goals against the other peers use kanal (threads)."""

    def __init__(self, issue, workload, text, kind="peer", peer=None, need=None,
                 impl="kanal", metric=None):
        self.issue = issue
        self.workload = workload
        self.text = text
        self.kind = kind
        self.peer = peer
        self.need = need
        self.impl = impl
        self.metric = metric


# One line per goal; add yours here. A workload with a "peer" target also
# runs pinned to one CPU (run.py), and its pinned ratio is shown beside.
TARGETS = [
    Target(2, "chan_spsc", "throughput >= 1.5x go", peer="go", need=1.5,
           impl="kanal_go"),
    Target(2, "chan_spsc", "throughput >= 4x pthread", peer="pthread", need=4),
    Target(2, "chan_mpmc_4p4c", "throughput >= 2x go", peer="go", need=2,
           impl="kanal_go"),
    Target(2, "chan_mpmc_4p4c_cap1", "throughput >= go", peer="go", need=1,
           impl="kanal_go"),
    Target(2, "chan_mpmc_4p4c", "pinned to one CPU: throughput >= 0.5x its own "
           "all-CPU throughput", kind="pinned", need=0.5),
    Target(3, "sem_uncontended", "throughput >= sem_t", peer="sem_t", need=1),
    Target(3, "sem_contended", "throughput >= 2x go", peer="go", need=2,
           impl="kanal_go"),
    Target(3, "ctx_cancel_fanout", "tasks blocked in kn_ctx_wait, Go's shape: "
           "throughput >= go", peer="go", need=1, impl="kanal_go"),
    Target(4, "select_2_recv", "throughput >= 2x go", peer="go", need=2,
           impl="kanal_go"),
    Target(4, "chan_mpmc_4p4c_cap0", "throughput >= go", peer="go", need=1,
           impl="kanal_go"),
    Target(4, "chan_pingpong_unbuffered", "round trip <= 2x go's "
           "(throughput ratio >= 0.5)", peer="go", need=0.5, impl="kanal_go"),
    Target(4, "chan_pingpong_unbuffered", "round trip >= 10x faster than pthread",
           peer="pthread", need=10),
    Target(14, "chan_pingpong_unbuffered", "steady state (second half of the "
           "round trips): 0 system calls per suspend/resume pair", kind="zero",
           metric="steady_syscalls_per_op", impl="kanal_go"),
    Target(16, "chan_pingpong_unbuffered", "traced (KANAL_TRACE) within 10% of "
           "untraced: kanal_go_traced/kanal_go throughput >= 0.91", peer="kanal_go",
           need=0.91, impl="kanal_go_traced"),
    Target(16, "mutex_uncontended", "time <= pthread's (throughput ratio >= 1)",
           peer="pthread", need=1),
    Target(16, "mutex_8_contended", "throughput >= go", peer="go", need=1,
           impl="kanal_go"),
    Target(16, "mutex_8_contended", "throughput >= pthread", peer="pthread",
           need=1),
    Target(16, "rwmutex_read_mostly", "throughput >= go", peer="go", need=1,
           impl="kanal_go"),
    Target(16, "rwmutex_read_mostly", "throughput >= pthread", peer="pthread",
           need=1),
    Target(5, "pool_spawn_wait", "time per task <= 0.5x tbb's (ratio >= 2)",
           peer="tbb", need=2),
    Target(5, "pool_fib30", "time <= tbb's (ratio >= 1)", peer="tbb", need=1),
    Target(5, "group_limit20", "throughput >= 4x go", peer="go", need=4,
           impl="kanal_go"),
    Target(5, IDLE, "idle pool burns < 1% of one core (< 1e7 CPU ns per idle "
           "second)", kind="idle"),
    Target(6, "pipeline_3stage", "time per item <= go's (ratio >= 1)",
           peer="go", need=1, impl="kanal_go"),
    Target(13, "pipeline_3stage_buf", "batch 1: throughput >= go", peer="go",
           need=1, impl="kanal_go"),
    Target(13, "fanout4_fanin", "batch 1: throughput >= 1.5x go", peer="go",
           need=1.5, impl="kanal_go"),
    Target(13, "worker_pool", "batch 1: throughput >= 1.5x go", peer="go",
           need=1.5, impl="kanal_go"),
    Target(6, "foreach_per_item", "throughput >= 2x go", peer="go", need=2,
           impl="kanal_go"),
    Target(13, "foreach_runners", "throughput >= go", peer="go", need=1,
           impl="kanal_go"),
    Target(14, "skynet_1m", "time <= 0.5x go's (ratio >= 2)", peer="go", need=2,
           impl="kanal_go"),
    Target(14, "fib30_wg", "time <= go's (ratio >= 1)", peer="go", need=1,
           impl="kanal_go"),
    Target(14, "blocked_1m", "peak RSS per blocked task <= 1.5x go's", kind="lower",
           metric="rss_bytes_per_op", peer="go", need=1.5, impl="kanal_go"),
    Target(14, SEQUENCE, "every workload within 1.5x of its fresh-process time",
           kind="sequence", need=1.5, impl="kanal_go"),
    Target(15, "net_echo_1000", "requests/s >= 1.2x go", peer="go", need=1.2),
    Target(15, "net_echo_1000", "requests/s >= 0.8x the epoll server",
           peer="epoll", need=0.8),
    Target(15, "net_echo_64", "p99 round trip <= go's", kind="lower",
           metric="p99_ns", peer="go", need=1),
    Target(15, "net_echo_1000", "p99 round trip <= go's", kind="lower",
           metric="p99_ns", peer="go", need=1),
    Target(15, "timer_100k", "p99 lateness <= go's", kind="lower",
           metric="p99_ns", peer="go", need=1),
    Target(15, TIMER_IDLE, "an idle process with 100,000 sleeping tasks burns "
           "< 1% of one core (< 1e7 CPU ns per idle second)", kind="idle"),
    Target(15, "net_echo_1000", "zero kanal allocations per request after "
           "warm-up", kind="max", metric="allocs_per_op", need=0),
]

# Fixed colours so an impl looks the same in every plot.
COLOURS = {"kanal": "#1f5fa8", "kanal_go": "#3a9a5b", "pthread": "#8c8c8c",
           "sem_t": "#a0522d", "go": "#00add8", "ck": "#e8890c",
           "crossbeam": "#b7410e", "tbb": "#7b3fa0", "epoll": "#e377c2"}
PCT_COLOURS = ["#9ecae1", "#4292c6", "#08306b"]


class Data:
    def __init__(self, records):
        self.records = sorted(records, key=run.record_key)
        self.by = {(r["workload"], r["cpus"], r["impl"]): r for r in self.records}
        self.maxcpus = {}
        for r in self.records:
            w = r["workload"]
            self.maxcpus[w] = max(self.maxcpus.get(w, 0), r["cpus"])

    def get(self, workload, impl, cpus=None):
        if cpus is None:
            cpus = self.maxcpus.get(workload)
        return self.by.get((workload, cpus, impl))

    def rows(self, workloads):
        """(workload, cpus) pairs in report order."""
        seen = []
        for r in self.records:
            key = (r["workload"], r["cpus"])
            if r["workload"] in workloads and key not in seen:
                seen.append(key)
        return seen

    def workloads(self):
        """Workload names in report order."""
        return list(dict.fromkeys(r["workload"] for r in self.records))

    def impls(self, workloads):
        return sorted({r["impl"] for r in self.records if r["workload"] in workloads},
                      key=run.impl_key)


def evaluate(t, d):
    """(status, measured text) with status "met", "missed" or "not measured".
    The text names the impl measured (kanal_go/go, ...)."""
    kanal = d.get(t.workload, t.impl)
    if t.kind == "idle":
        if not kanal:
            return "not measured", "no %s result" % t.impl
        if kanal.get("failed"):
            return "missed", "run failed: " + kanal["failed"]
        ns = kanal["ns_per_op"]
        return ("met" if ns < IDLE_LIMIT_NS else "missed",
                "%s CPU ns per idle second = %.2g%% of a core" % (run.fmt_ns(ns), ns / 1e7))
    if t.kind == "max":
        if not kanal or kanal.get("failed") or kanal.get(t.metric) is None:
            return ("not measured" if not kanal else "missed",
                    "no %s %s" % (t.impl, t.metric))
        return ("met" if kanal[t.metric] <= t.need else "missed",
                "%s: %s %.4g (need <= %g)" % (t.metric, t.impl, kanal[t.metric], t.need))
    if t.kind == "lower":
        return evaluate_lower(t, kanal, d.get(t.workload, t.peer))
    if t.kind == "sequence":
        return evaluate_sequence(t, d)
    if t.kind == "zero":
        return evaluate_zero(t, kanal)
    if t.kind == "pinned":
        other = d.get(t.workload, t.impl, 1)
        what = "%s cpus=1 / cpus=%s" % (t.impl, d.maxcpus.get(t.workload))
        if other is kanal:
            return "not measured", "no pinned run"
    else:
        other = d.get(t.workload, t.peer)
        what = "%s/%s" % (t.impl, t.peer)
    if not kanal or not other:
        return "not measured", "no %s result" % (t.impl if not kanal else
                                                 t.peer or "pinned")
    for r in (kanal, other):
        if r.get("failed"):
            # A broken kanal run misses the goal; a broken peer leaves it open.
            return ("missed" if r["impl"] == t.impl else "not measured",
                    "%s run failed: %s" % (r["impl"], r["failed"]))
    ratio = run.throughput_ratio(other, kanal) if t.kind == "pinned" else \
        run.throughput_ratio(kanal, other)
    if ratio is None:
        return "not measured", "no throughput"
    text = "%s = %s (need >= %g)" % (what, run.fmt_ratio(ratio), t.need)
    if t.kind == "peer" and d.maxcpus.get(t.workload, 1) > 1:
        # The oversubscribed case beside it; the goal is the all-CPU one.
        text += "; pinned to 1 CPU: %s" % run.fmt_ratio(run.throughput_ratio(
            d.get(t.workload, t.impl, 1), d.get(t.workload, t.peer, 1)))
    return ("met" if ratio >= t.need else "missed", text)


def evaluate_lower(t, kanal, other):
    """t.metric, impl against peer (lower is better)."""
    if not kanal or not other:
        return "not measured", "no %s result" % (t.impl if not kanal else t.peer)
    for r in (kanal, other):
        if r.get("failed") or not r.get(t.metric):
            return ("missed" if r is kanal else "not measured",
                    "%s: %s" % (r["impl"], r.get("failed") or "no " + t.metric))
    fmt = (lambda v: run.fmt_ns(v) + " ns") if t.metric.endswith("_ns") else \
        (lambda v: "%.0f B" % v)
    ratio = kanal[t.metric] / other[t.metric]
    return ("met" if ratio <= t.need else "missed",
            "%s: %s %s, %s %s: %.2fx (need <= %g)" % (
                t.metric, t.impl, fmt(kanal[t.metric]), t.peer,
                fmt(other[t.metric]), ratio, t.need))


def evaluate_zero(t, rec):
    """t.metric of impl's all-CPU run is 0."""
    if not rec or rec.get("failed") or rec.get(t.metric) is None:
        return ("missed" if rec else "not measured",
                rec.get("failed") or "no " + t.metric if rec else
                "no %s result" % t.impl)
    v = rec[t.metric]
    return ("met" if v == 0 else "missed",
            "%s %s = %.4g (need 0)" % (t.impl, t.metric, v))


def sequence_steps(rec):
    """[(workload, ns/op)] of a sequence_go_shaped record, in order."""
    keys = sorted(k for k in rec if k.startswith("seq_"))
    return [(k[len("seq_00_"):], rec[k]) for k in keys]


def sequence_table(d):
    """Each step of sequence_go_shaped next to the same workload's time in a
    fresh process (this run's record of it), kanal_go and go."""
    impls = [i for i in ("kanal_go", "go") if d.get(SEQUENCE, i)]
    if not impls:
        return []
    header = ["step"]
    for i in impls:
        header += ["%s in sequence" % i, "%s fresh" % i, "%s seq/fresh" % i]
    steps = {i: sequence_steps(d.get(SEQUENCE, i)) for i in impls}
    rows = []
    for n, (w, _) in enumerate(steps[impls[0]]):
        row = ["%d `%s`" % (n, w)]
        for i in impls:
            ns = steps[i][n][1] if n < len(steps[i]) else None
            fresh = d.get(w, i)
            fresh_ns = fresh.get("ns_per_op") if fresh and not fresh.get("failed") else None
            row += [run.fmt_ns(ns), run.fmt_ns(fresh_ns),
                    "%.2fx" % (ns / fresh_ns) if ns and fresh_ns else "-"]
        rows.append(row)
    return ["`%s`: ns/op of each workload run one after the other in one "
            "process, beside its own fresh-process run (> 1: slower in the "
            "sequence; the sequence runs fewer items)." % SEQUENCE, ""] + \
        md_table(header, rows) + [""]


def evaluate_sequence(t, d):
    """Every step within need x its fresh-process time."""
    rec = d.get(t.workload, t.impl)
    if not rec or rec.get("failed"):
        return ("missed" if rec else "not measured",
                rec["failed"] if rec else "no %s result" % t.impl)
    worst, missing = None, []
    for w, ns in sequence_steps(rec):
        fresh = d.get(w, t.impl)
        if not fresh or fresh.get("failed") or not fresh.get("ns_per_op"):
            missing.append(w)
            continue
        r = ns / fresh["ns_per_op"]
        if worst is None or r > worst[0]:
            worst = (r, w)
    if worst is None:
        return "not measured", "no fresh-process runs"
    text = "worst: `%s` %.2fx its fresh time (need <= %g)" % (worst[1], worst[0], t.need)
    if missing:
        text += "; no fresh run of " + ", ".join(missing)
    return ("met" if worst[0] <= t.need and not missing else "missed", text)


def stacks_notes(d, names):
    """Per run of the stack workloads: release time, RSS, system calls."""
    out = []
    for r in d.records:
        if r["workload"] not in names or r.get("failed"):
            continue
        parts = []
        if r.get("release_ns_per_op") is not None:
            parts.append("release %s ns/task" % run.fmt_ns(r["release_ns_per_op"]))
        if r.get("rss_bytes_per_op") is not None:
            parts.append("%.0f B of RSS per blocked task" % r["rss_bytes_per_op"])
        if r.get("peak_rss_kb") is not None:
            parts.append("peak RSS %.1f MiB" % (r["peak_rss_kb"] / 1024.0))
        if r.get("syscalls_per_op") is not None:
            parts.append("%.3g system calls/task" % r["syscalls_per_op"])
        out.append("- `%s` %s cpus=%d: %s" % (r["workload"], r["impl"], r["cpus"],
                                             ", ".join(parts)))
    return out + [""] if out else []


def cell(r):
    if r is None:
        return "-"
    if r.get("failed"):
        return "FAILED"
    return run.fmt_ns(r["ns_per_op"])


def md_table(header, rows, right_from=1):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if i >= right_from else "---"
                          for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def group_table(d, names):
    impls = d.impls(names)
    ours = [i for i in impls if i in KANAL_IMPLS]
    peers = [i for i in impls if not run.is_kanal(i)]
    ratios = [(k, p) for k in ours for p in peers]
    header = ["workload", "cpus"] + ["%s ns/op" % i for i in impls]
    header += ["%s/%s" % kp for kp in ratios]
    rows = []
    for (w, c) in d.rows(names):
        row = ["`%s`" % w, str(c)] + [cell(d.by.get((w, c, i))) for i in impls]
        row += [run.fmt_ratio(run.throughput_ratio(d.by.get((w, c, k)),
                                                   d.by.get((w, c, p))))
                for (k, p) in ratios]
        rows.append(row)
    return md_table(header, rows, right_from=1)


def latency_table(d):
    rows = []
    for r in d.records:
        if "p50_ns" in r and not r.get("failed"):
            rows.append(["`%s`" % r["workload"], str(r["cpus"]), r["impl"]] +
                        [run.fmt_ns(r.get(k)) for k in ("p50_ns", "p99_ns", "p999_ns")])
    if not rows:
        return []
    return md_table(["workload", "cpus", "impl", "p50 ns", "p99 ns", "p99.9 ns"],
                    rows, right_from=3)


def full_table(d):
    rows = []
    for r in d.records:
        spread = "-" if r.get("min") is None else "%s - %s" % (
            run.fmt_ns(r["min"]), run.fmt_ns(r["max"]))
        sc = r.get("syscalls_per_op")
        steady = r.get("steady_syscalls_per_op")
        rows.append(["`%s`" % r["workload"], str(r["cpus"]), r["impl"],
                     cell(r), spread, run.fmt_ops(r.get("ops_per_sec")),
                     ("-" if sc is None else "%.3g" % sc) +
                     ("" if steady is None else " (steady %.3g)" % steady),
                     str(r.get("reps", "-")), "{:,}".format(r["items"])
                     if isinstance(r.get("items"), int) else "-"])
    return md_table(["workload", "cpus", "impl", "median ns/op", "min - max",
                     "ops/s", "syscalls/op", "reps", "items"], rows, right_from=3)


def ratio_cell(d, w, impl, peer, cpus):
    return run.fmt_ratio(run.throughput_ratio(d.get(w, impl, cpus),
                                              d.get(w, peer, cpus)))


def against_go(d):
    """The headline: kanal (threads) and kanal_go (tasks) over go, for every
    workload go runs, on all CPUs and pinned to one; then where each loses."""
    names = [w for w in d.workloads() if d.get(w, "go") and w not in IDLES]
    if not names:
        return []
    pinned = any(d.get(w, "go", 1) and d.maxcpus[w] > 1 for w in names)
    n = max(d.maxcpus[w] for w in names)
    header = ["workload", "kanal/go (%d CPUs)" % n, "kanal_go/go (%d CPUs)" % n]
    if pinned:
        header += ["kanal/go (1 CPU)", "kanal_go/go (1 CPU)"]
    rows = []
    for w in names:
        row = ["`%s`" % w] + [ratio_cell(d, w, k, "go", d.maxcpus[w])
                              for k in KANAL_IMPLS]
        if pinned:
            row += [ratio_cell(d, w, k, "go", 1) if d.maxcpus[w] > 1 else "-"
                    for k in KANAL_IMPLS]
        rows.append(row)
    out = ["Throughput ratio over Go 1.19 (> 1: kanal is faster). `kanal` runs "
           "the actors on OS threads (in the pool and pattern workloads, the "
           "part Go keeps in its main goroutine on the calling thread and the "
           "tasks on a kanal pool); `kanal_go` runs everything as `kn_go` "
           "tasks, as Go runs goroutines. `%s` and `%s` (CPU burnt while idle, "
           "not rates) are in their sections' tables." % IDLES, ""] + md_table(header, rows) + [""]
    for k, what in (("kanal", "kanal on OS threads"), ("kanal_go", "kanal_go (tasks)")):
        parts = []
        for label, pick in (("on %d CPUs" % n, lambda w: d.maxcpus[w]),
                            ("pinned to 1 CPU", lambda w: 1)):
            losses = []
            for w in names:
                if label.startswith("pinned") and d.maxcpus[w] == 1:
                    continue
                ratio = run.throughput_ratio(d.get(w, k, pick(w)),
                                             d.get(w, "go", pick(w)))
                if ratio is not None and ratio < 1:
                    losses.append("`%s` %s" % (w, run.fmt_ratio(ratio)))
            if losses:
                parts.append("%s: %s" % (label, ", ".join(losses)))
        out.append("- **%s loses to Go** %s." % (what, "; ".join(parts))
                   if parts else "- %s is at least as fast as Go everywhere." % what)
    return out + [""]


def features_table(d):
    """Library features (batching) against the same kanal impl without."""
    rows = []
    for (w, c) in d.rows(d.workloads()):
        for feat, base in FEATURES:
            f, b = d.by.get((w, c, feat)), d.by.get((w, c, base))
            if f:
                rows.append(["`%s`" % w, str(c), feat, cell(f), cell(b),
                             run.fmt_ratio(run.throughput_ratio(f, b))])
    if not rows:
        return []
    return ["## Library feature: batched patterns", "",
            "The target workloads run kanal's patterns with batch 1 (one value "
            "per channel operation, as the Go loops move them). With the "
            "library's default (batch 0: a stage or worker-pool worker takes "
            "up to 16 values that are already there while its function is "
            "cheap; a merge forwarder up to 16) they run as below. Go has no "
            "counterpart: no target, no ratio to a peer.", ""] + md_table(
                ["workload", "cpus", "impl", "ns/op", "batch 1 ns/op",
                 "speedup over batch 1"], rows, right_from=3) + [""]


# Plots.

def gnuplot_terminal():
    """pngcairo when this gnuplot has it (Debian's gnuplot-nox does), else png.
    noenhanced: workload names are full of underscores."""
    gp = shutil.which("gnuplot")
    if not gp:
        return None, None
    p = subprocess.run([gp, "-e", "set terminal pngcairo"], capture_output=True,
                       text=True)
    if p.returncode == 0 and not p.stderr.strip():
        return gp, "pngcairo noenhanced font 'sans,9'"
    return gp, "png noenhanced font 'sans' 9"


def quote(s):
    return "'" + s.replace("'", "''") + "'"


def bar_plot(gp, term, out, title, ylabel, series, colours, blocks, rotate,
             unit_line=False):
    """A clustered bar chart with a log y axis. blocks: [(caption or None,
    [(x label, value or None per series), ...])]; each captioned block is
    its own gnuplot newhistogram, the caption written under it. unit_line:
    the values are ratios; draw a line at 1x."""
    vals = [v for _, rows in blocks for row in rows for v in row[1:] if v]
    if not vals:
        return "no data"
    lo, hi = min(vals), max(vals)
    if unit_line:
        lo, hi = min(lo, 1), max(hi, 1)
    nrows = sum(len(rows) for _, rows in blocks)
    longest = max(len(row[0]) for _, rows in blocks for row in rows)
    if rotate:
        # A label at 40 degrees reaches about 0.3 lines down per character.
        bmargin = 3 + int(0.32 * longest)
        xtics = "set xtics rotate by 40 right nomirror scale 0"
    else:
        bmargin = 5
        xtics = "set xtics nomirror scale 0"
    per_row = 10 * len(series) + 24
    if not rotate:
        # Level labels side by side: room for the longest ("kanal_go").
        per_row = max(per_row, 7 * longest + 12)
    width = min(2200, max(900, per_row * nrows + 250))
    with tempfile.TemporaryDirectory() as tmp:
        dat = os.path.join(tmp, "data.tsv")
        with open(dat, "w") as f:
            for _, rows in blocks:
                for (label, *row) in rows:
                    f.write("\t".join([label] + ["?" if v is None else "%.6g" % v
                                                  for v in row]) + "\n")
                f.write("\n\n")
        plots = []
        for b, (caption, _) in enumerate(blocks):
            if caption is not None:
                plots.append("newhistogram %s offset 0,-%d" % (
                    quote(caption), 1 if not rotate else bmargin - 3))
            for i, name in enumerate(series):
                plots.append("%s index %d using %d%s %s lc rgb %s" % (
                    quote(dat), b, i + 2, ":xtic(1)" if i == 0 else "",
                    "title " + quote(name) if b == 0 else "notitle",
                    quote(colours[i])))
        script = "\n".join([
            "set terminal %s size %d,%d" % (term, width, 460 + 14 * bmargin),
            "set output %s" % quote(out),
            "set title %s" % quote(title),
            "set ylabel %s" % quote(ylabel),
            "set datafile separator '\\t'",
            "set datafile missing '?'",
            "set style data histograms",
            "set style histogram clustered gap 1",
            "set style fill solid 0.9 border rgb '#404040'",
            "set boxwidth 0.9",
            "set logscale y",
            "set yrange [%g:%g]" % (lo / 2, hi * 4),
            "set offsets 0.5, 0.5, 0, 0",
            "set format y '%s'" % ("%gx" if unit_line else "%.0s%c"),
            "set arrow from graph 0, first 1 to graph 1, first 1 nohead "
            "lw 2 lc rgb '#c00000' front" if unit_line else "",
            "set grid ytics",
            xtics,
            "set key top right horizontal",
            "set lmargin %d" % max(10, int(0.4 * len(blocks[0][1][0][0])) if rotate
                                   else 10),
            "set bmargin %d" % bmargin,
            "plot " + ", ".join(plots),
        ])
        p = subprocess.run([gp], input=script, capture_output=True, text=True)
    if p.returncode != 0:
        return "gnuplot failed: " + run.last_line(p.stderr)
    return None


def throughput_plot(gp, term, d, out):
    names = [w for w in {r["workload"] for r in d.records} if w not in IDLES]
    impls = d.impls(names)
    rows = []
    for (w, c) in d.rows(names):
        label = w if c == d.maxcpus[w] else "%s (cpus=%d)" % (w, c)
        vals = []
        for i in impls:
            r = d.by.get((w, c, i))
            vals.append(None if r is None or r.get("failed") else r.get("ops_per_sec"))
        rows.append([label] + vals)
    return bar_plot(gp, term, out, "Throughput: median ops/s (log scale, higher is "
                    "better)", "ops/s", impls,
                    [COLOURS.get(i, "#444444") for i in impls], [(None, rows)],
                    rotate=True)


def lighter(colour):
    """colour halfway to white: kanal_go's bars beside kanal's."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#%02x%02x%02x" % tuple((c + 255) // 2 for c in rgb)


def ratio_plot(gp, term, d, out):
    """kanal and kanal_go over each peer, per workload (all CPUs): one bar
    per pair, the peer's colour (lighter for kanal_go), a line at 1x."""
    names = [w for w in d.workloads() if w not in IDLES]
    peers = [i for i in d.impls(names) if not run.is_kanal(i)]
    pairs = [(k, p) for p in peers for k in KANAL_IMPLS
             if any(d.get(w, k) and d.get(w, p) for w in names)]
    rows = []
    for w in names:
        vals = [run.throughput_ratio(d.get(w, k), d.get(w, p)) for k, p in pairs]
        if any(v for v in vals):
            rows.append([w] + vals)
    if not rows:
        return "no ratios"
    colours = [COLOURS.get(p, "#444444") if k == "kanal" else
               lighter(COLOURS.get(p, "#444444")) for k, p in pairs]
    return bar_plot(gp, term, out, "kanal over each peer: throughput ratio (log "
                    "scale; above the red 1x line kanal is faster)", "ratio",
                    ["%s/%s" % kp for kp in pairs], colours, [(None, rows)],
                    rotate=True, unit_line=True)


def latency_plot(gp, term, d, out):
    blocks = []
    for (w, c) in d.rows({r["workload"] for r in d.records if "p50_ns" in r}):
        rows = []
        for i in d.impls([w]):
            r = d.by.get((w, c, i))
            if r and "p50_ns" in r and not r.get("failed"):
                rows.append([i, r.get("p50_ns"), r.get("p99_ns"), r.get("p999_ns")])
        if rows:
            blocks.append((w if c == d.maxcpus[w] else "%s (cpus=%d)" % (w, c), rows))
    if not blocks:
        return "no latency data"
    return bar_plot(gp, term, out, "Latency percentiles: median over repetitions, ns "
                    "(log scale, lower is better)", "ns", ["p50", "p99", "p99.9"],
                    PCT_COLOURS, blocks, rotate=False)


# The net_echo workloads by connections, for the plot against connections.
NET_ECHO = [(64, "net_echo_64"), (256, "net_echo_256"), (1000, "net_echo_1000")]


def net_target_points(d, metric):
    """(connections, value) for each target on a net_echo workload's metric
    (ops_per_sec: a "peer" target; else a "lower" one): need x the peer's."""
    conns = {w: c for c, w in NET_ECHO}
    pts = []
    for t in TARGETS:
        other = d.get(t.workload, t.peer) if t.workload in conns else None
        if (metric == "ops_per_sec") != (t.kind == "peer") or \
                (t.kind == "lower" and t.metric != metric):
            continue
        if other and not other.get("failed") and other.get(metric):
            pts.append((conns[t.workload], t.need * other[metric], t.peer))
    return pts


def net_plot(gp, term, d, out):
    """Requests/s and p99 round trip against connections (64, 256, 1000),
    a line per server, the targets as red marks (need x the peer's)."""
    impls = d.impls([w for _, w in NET_ECHO])
    if not impls:
        return "no net_echo results"
    panels = (("ops_per_sec", "requests/s (higher is better)"),
              ("p99_ns", "p99 round trip, ns (lower is better)"))
    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        for metric, ylabel in panels:
            lines = []
            for b, i in enumerate(impls):
                dat = os.path.join(tmp, "%s_%d.tsv" % (metric, b))
                with open(dat, "w") as f:
                    for c, w in NET_ECHO:
                        r = d.get(w, i)
                        if r and not r.get("failed") and r.get(metric):
                            f.write("%d\t%.6g\n" % (c, r[metric]))
                lines.append("%s using 1:2 with linespoints lw 2 pt 7 lc rgb %s "
                             "title %s" % (quote(dat), quote(COLOURS.get(i, "#444444")),
                                           quote(i)))
            pts = net_target_points(d, metric)
            if pts:
                dat = os.path.join(tmp, "%s_target.tsv" % metric)
                with open(dat, "w") as f:
                    f.writelines("%d\t%.6g\n" % (c, v) for c, v, _ in pts)
                lines.append("%s using 1:2 with points pt 2 ps 2.5 lw 3 lc rgb "
                             "'#c00000' title 'target'" % quote(dat))
            plots.append("\n".join([
                "set ylabel %s" % quote(ylabel),
                "plot " + ", ".join(lines)]))
        script = "\n".join([
            "set terminal %s size 1200,460" % term,
            "set output %s" % quote(out),
            "set datafile separator '\\t'",
            "set multiplot layout 1,2 title %s" % quote(
                "net_echo: against connections (log scales; red: the issue's "
                "targets, need x the peer's figure)"),
            "set logscale xy",
            "set xrange [48:1400]",
            "set xtics (64, 256, 1000)",
            "set xlabel 'connections'",
            "set format y '%.0s%c'",
            "set grid",
            "set key bottom right",
        ] + plots + ["unset multiplot"])
        p = subprocess.run([gp], input=script, capture_output=True, text=True)
    if p.returncode != 0:
        return "gnuplot failed: " + run.last_line(p.stderr)
    return None


def make_plots(d, plot_dir):
    """{name: (path or None, note)}."""
    gp, term = gnuplot_terminal()
    if not gp:
        return {}, "gnuplot not found (Debian package gnuplot-nox): no plots"
    os.makedirs(plot_dir, exist_ok=True)
    result = {}
    for name, fn in (("throughput", throughput_plot), ("ratio", ratio_plot),
                     ("latency", latency_plot), ("net", net_plot)):
        path = os.path.join(plot_dir, name + ".png")
        err = fn(gp, term, d, path)
        if err and os.path.exists(path):
            os.remove(path)  # a stale plot would contradict the tables
        result[name] = (None, err) if err else (path, None)
    return result, None


# The page.

def machine_line(meta):
    m = meta.get("machine", {})
    return "%s, %s CPUs, Linux %s (%s)" % (m.get("cpu", "?"), m.get("nproc", "?"),
                                           m.get("kernel", "?"), m.get("arch", "?"))


def provenance(meta):
    out = ["- Machine: " + machine_line(meta),
           "- Date: %s" % meta.get("date", "?"),
           "- Command: `%s`" % (meta.get("invoked_as") or meta.get("command", "?"))]
    if meta.get("invoked_as"):
        out.append("  (runs `%s`)" % meta.get("command"))
    commit = meta.get("git_commit", "?")
    out.append("- Commit: `%s`%s" % (commit, " with uncommitted changes"
                                     if meta.get("git_dirty") else ""))
    build = ", ".join(x for x in (
        meta.get("build_type") and "CMake %s build" % meta["build_type"],
        meta.get("cc"), meta.get("go"), meta.get("rustc")) if x)
    if build:
        out.append("- Toolchain: " + build)
    out.append("- Repetitions: %s per pair%s" % (
        meta.get("reps", "?"), "" if meta.get("scale", 1) == 1 else
        ", items scaled by %g" % meta["scale"]))
    runs = meta.get("runs", [])
    if len(runs) > 1:
        out += ["", "The results were assembled from several runs (`--only`); "
                "the date, command and commit above are the last one's:", ""]
        out += md_table(["date", "commit", "reps", "command", "workloads"],
                        [[r.get("date", "?"),
                          "`%s`%s" % ((r.get("git_commit") or "?")[:12],
                                      "+" if r.get("git_dirty") else ""),
                          str(r.get("reps", "?")),
                          "`%s`" % r.get("command", "?"),
                          ", ".join(r.get("workloads", []))]
                         for r in runs], right_from=99)
    return out


HOW_TO_READ = """\
Every workload/impl pair runs as its own process; see
[bench/WORKLOADS.md](bench/WORKLOADS.md) for what each one does. Within a
repetition every impl of a workload runs once, one after the other, and the
order rotates by one each repetition, so the drift of a shared machine hits
every impl alike. Each number is the **median** over the repetitions.

- **ns/op**: time of the timed region divided by the items (channel values,
  semaphore acquire/release pairs, tasks, round trips, ...). Lower is better.
- **kanal/peer**: throughput ratio = kanal ops/s / peer ops/s. **> 1 means
  kanal is faster**; 0.5x means kanal takes twice as long per item.
- **kanal_go**: the same kanal code shaped as the Go program: every actor,
  the part Go runs in its main goroutine included, is a `kn_go` task on
  kanal's pool rather than an OS thread. kanal_go/peer reads as kanal/peer;
  each target says which of the two it was measured on.
- **kanal_batched**, **kanal_go_batched**: the pattern workloads with the
  pattern library's default batch instead of batch 1; a library feature
  with no Go counterpart, in a table of its own, without targets.
- **cpus**: 2 = every CPU of the machine; 1 = the process pinned to one CPU
  with `taskset -c 0`, so every thread shares one core (oversubscription).
- `pool_idle_cpu` and `timer_100k_idle` are not rates: their ns/op is the
  CPU time (ns) the idle process burnt during one second (an idle pool;
  100,000 sleeping tasks); less is better and the ratio is peer CPU /
  kanal CPU.
- The machine is shared and small: absolute times move between runs, the
  ratios of one run much less. Min - max per pair are in the full table at
  the end.
- A peer that fails or times out is a peer note at the end, not a failure
  of the run; a failed kanal run is listed as such."""


def render(records, meta, plots, plot_note, md_path):
    d = Data(records)
    out = ["<!-- Generated by bench/report.py from bench/results/latest.json and "
           "meta.json; do not edit. -->", "", "# kanal benchmarks", ""]
    out += provenance(meta)
    out += ["", "## How to read it", "", HOW_TO_READ.replace(
        "cpus**: 2", "cpus**: %s" % meta.get("machine", {}).get("nproc", 2)), ""]

    out += ["## kanal against Go", ""] + against_go(d)

    out += ["## Targets", "", "Each goal is evaluated on all CPUs; the ratio "
            "pinned to one CPU is shown beside it.", ""]
    counts = {"met": 0, "missed": 0, "not measured": 0}
    lines = []
    for t in TARGETS:
        status, measured = evaluate(t, d)
        counts[status] += 1
        box = "x" if status == "met" else " "
        lines.append("- [%s] **%s** - issue %d, `%s`: %s - %s" % (
            box, status, t.issue, t.workload, t.text, measured))
    out += ["%d met, %d missed, %d not measured." % (
        counts["met"], counts["missed"], counts["not measured"]), ""] + lines + [""]

    known = {w.name for w in run.WORKLOADS}
    groups = [(g, [w.name for w in run.WORKLOADS if w.group == g]) for g in run.groups()]
    others = sorted({r["workload"] for r in records} - known)
    if others:
        groups.append(("Other", others))
    for title, names in groups:
        if not d.rows(names):
            continue
        out += ["## %s" % title, ""] + group_table(d, names) + [""]
        waits = ["%s %s cpus=%d: %.3g" % (r["workload"], r["impl"], r["cpus"],
                                         r["waits_per_op"])
                 for r in d.records if r["workload"] in names and
                 r.get("waits_per_op") is not None]
        if waits:
            out += ["Acquires that found no token and waited, per pair: " +
                    "; ".join(waits) + ".", ""]
        if title == run.STACKS:
            out += stacks_notes(d, names) + sequence_table(d)
        if title == run.POOL and d.rows([IDLE]):
            out += ["`pool_idle_cpu`: CPU ns burnt per idle second (1e7 = 1% of "
                    "one core); ratio = peer CPU / kanal CPU.", ""]
        if title == run.NET_TIME and d.rows([TIMER_IDLE]):
            out += ["`timer_100k_idle`: CPU ns burnt per idle second with 100,000 "
                    "tasks asleep (1e7 = 1% of one core); ratio = peer CPU / "
                    "kanal CPU. The allocation target reads `allocs_per_op` "
                    "of kanal's `net_echo_1000` record: kanal's allocations "
                    "per request in the server's steady state.", ""]

    out += features_table(d)

    lat = latency_table(d)
    if lat:
        out += ["## Latency", "", "Percentiles of the per-item latency each "
                "latency workload records (round trip, send-to-receive, "
                "end-to-end), median over repetitions.", ""] + lat + [""]

    out += ["## Plots", ""]
    if plot_note:
        out += [plot_note + ".", ""]
    for name, alt in (("throughput", "Throughput per workload and impl"),
                      ("ratio", "kanal and kanal_go over each peer, per workload"),
                      ("latency", "Latency percentiles per impl"),
                      ("net", "net_echo requests/s and p99 against connections, "
                       "with the targets")):
        path, note = plots.get(name, (None, None))
        if path:
            rel = os.path.relpath(path, os.path.dirname(os.path.abspath(md_path)))
            out += ["![%s](%s)" % (alt, rel), ""]
        elif note:
            out += ["%s plot: %s." % (name.capitalize(), note), ""]

    failed = [r for r in d.records if r.get("failed")]
    ours = [r for r in failed if run.is_kanal(r["impl"])]
    if ours:
        out += ["## Failed kanal runs", ""]
        out += ["- `%s` %s cpus=%d: %s" % (r["workload"], r["impl"], r["cpus"],
                                          r["failed"]) for r in ours]
        out += [""]
    peers = [r for r in failed if not run.is_kanal(r["impl"])]
    notes = meta.get("notes", [])
    if peers or notes:
        out += ["## Peer notes", "", "Peers that failed, timed out (after "
                "`--peer-timeout` seconds) or were left out; not failures of "
                "the run.", ""]
        out += ["- `%s` %s cpus=%d: %s" % (r["workload"], r["impl"], r["cpus"],
                                          r["failed"]) for r in peers]
        out += ["- " + n for n in notes]
        out += [""]

    out += ["## All results", ""] + full_table(d) + [""]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=os.path.join(ROOT, "bench/results/latest.json"),
                    help="latest.json (meta.json is read from beside it)")
    ap.add_argument("--md", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--plots", default=os.path.join(ROOT, "bench/plot"),
                    help="directory for the plots (throughput, ratio, latency, net .png)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()

    records = run.load_json(args.results, None)
    if not isinstance(records, list):
        sys.exit("report.py: no result list in %s" % args.results)
    meta = run.load_json(os.path.join(os.path.dirname(os.path.abspath(args.results)),
                                      "meta.json"), {})
    if args.no_plots:
        plots, note = {}, "Plots not generated (--no-plots)"
    else:
        plots, note = make_plots(Data(records), args.plots)
    for name, (_, err) in plots.items():
        if err:
            print("report.py: %s plot: %s" % (name, err), file=sys.stderr)
    if note:
        print("report.py: " + note, file=sys.stderr)
    text = render(records, meta, plots, note, args.md)
    with open(args.md, "w") as f:
        f.write(text)
    print("report.py: wrote %s" % os.path.relpath(args.md))


if __name__ == "__main__":
    main()
