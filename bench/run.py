#!/usr/bin/env python3
"""Run the benchmark workloads of bench/WORKLOADS.md and record the medians.

Every workload/impl pair runs as its own process (C impls in kn-bench, the Go
impl in kn-bench-go, crossbeam-channel in kn-bench-rust). For each workload and CPU setting, each repetition runs
every impl once, in an order rotated by one per repetition, so slow drifts of
a shared machine hit every impl alike. The medians go to
bench/results/latest.json (a list of records), the run's circumstances to
bench/results/meta.json, and bench/report.py turns both into BENCHMARKS.md.

Standard library only: it runs on a bare Debian python3.
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHANNELS = "Channels"
SEM_CTX = "Semaphore and contexts"
SYNC = "Locks"
POOL = "Pool and groups"
PATTERNS = "Patterns"
STACKS = "Stacks and scale"
NET_TIME = "Network and time"


class Workload:
    """One row of WORKLOADS.md: who implements it and how many items a
    default run uses. group: the section of WORKLOADS.md and BENCHMARKS.md
    (any string; a new one becomes a new section, in registry order).
    pinned: also run on one CPU (taskset); every workload with a target
    against a peer (report.py's TARGETS) is, whatever this says. fixed: the
    item count is part of the workload: --scale does not touch it and its
    run time is not tuned. only_where: {impl: (cpus -> reason or None)},
    for a peer that cannot finish at some CPU counts (it is skipped there,
    and the reason becomes a peer note)."""

    def __init__(self, name, group, impls, items, pinned=False, fixed=False,
                 only_where=None):
        self.name = name
        self.group = group
        self.impls = impls.split()
        self.items = items
        self.pinned = pinned
        self.fixed = fixed
        self.only_where = only_where or {}

    def skip_reason(self, impl, cpus):
        rule = self.only_where.get(impl)
        return rule(cpus) if rule else None


def spinning_ring(cpus):
    """ck_ring's MPMC with 8 spinning actors: on 1 CPU they take turns, on 8
    or more each has its own; in between they can livelock (60 s timeouts
    on 2 CPUs)."""
    if cpus == 1 or cpus >= 8:
        return None
    return ("ck's spinning MPMC ring with 8 actors can livelock on %d CPUs: "
            "run only pinned to 1 CPU or on 8 or more" % cpus)


# WORKLOADS.md order, one line per workload: add new ones here (and to
# bench/go/main.go, and their targets to report.py's TARGETS). Items aim at
# 50-200 ms for a kanal run on a 2-core machine; the slow baselines
# (mutex+condvar, one futex round trip per item) take 5-20x longer with the
# same items. impls are the ones WORKLOADS.md names; any other impl
# kn-bench --list offers for a workload (kanal_go, kanal_batched, ...) runs
# too, and pairs a binary does not provide are skipped. fixed:
# ctx_cancel_*'s 10000 children, pool_idle_cpu's and timer_100k_idle's one
# idle second, timer_100k's sleepers and the
# million tasks of skynet_1m and blocked_1m are the workload itself.
WORKLOADS = [
    Workload("chan_spsc", CHANNELS, "kanal pthread go ck crossbeam", 3000000),
    Workload("chan_mpmc_2p2c", CHANNELS, "kanal pthread go ck crossbeam", 2000000, pinned=True),
    Workload("chan_mpmc_4p4c", CHANNELS, "kanal pthread go ck crossbeam", 2000000,
             only_where={"ck": spinning_ring}),
    Workload("chan_mpmc_4p4c_cap1", CHANNELS, "kanal pthread go ck crossbeam", 200000),
    Workload("chan_mpmc_4p4c_cap0", CHANNELS, "kanal pthread go crossbeam", 100000),
    Workload("chan_pingpong_unbuffered", CHANNELS, "kanal pthread go crossbeam", 50000),
    Workload("select_2_recv", CHANNELS, "kanal go crossbeam", 1000000),
    Workload("sem_uncontended", SEM_CTX, "kanal sem_t go", 10000000),
    Workload("sem_contended", SEM_CTX, "kanal sem_t pthread go", 5000000),
    Workload("sem_blocking", SEM_CTX, "kanal sem_t pthread go", 50000),
    Workload("ctx_cancel_fanout", SEM_CTX, "kanal go", 10000, fixed=True),
    Workload("ctx_cancel_callbacks", SEM_CTX, "kanal", 10000, fixed=True),
    Workload("mutex_uncontended", SYNC, "kanal pthread go", 10000000),
    Workload("mutex_8_contended", SYNC, "kanal pthread go", 1000000),
    Workload("rwmutex_read_mostly", SYNC, "kanal pthread go", 2000000),
    Workload("cond_pingpong", SYNC, "kanal pthread go", 50000),
    Workload("pool_spawn_wait", POOL, "kanal pthread go tbb", 1000000),
    Workload("pool_fib30", POOL, "kanal go tbb", 20),
    Workload("group_limit20", POOL, "kanal go", 500000),
    Workload("pool_idle_cpu", POOL, "kanal go", 1, fixed=True),
    Workload("generator", PATTERNS, "kanal go", 500000),
    Workload("pipeline_3stage", PATTERNS, "kanal go", 50000),
    Workload("pipeline_3stage_buf", PATTERNS, "kanal go", 500000),
    Workload("fanout4_fanin", PATTERNS, "kanal go", 500000),
    Workload("worker_pool", PATTERNS, "kanal go", 1000000),
    Workload("foreach_per_item", PATTERNS, "kanal pthread go", 200000),
    Workload("foreach_runners", PATTERNS, "kanal go", 2000000),
    Workload("skynet_1m", STACKS, "go", 1000000, fixed=True),
    Workload("fib30_wg", STACKS, "go", 10),
    Workload("blocked_1m", STACKS, "go", 1000000, fixed=True),
    Workload("sequence_go_shaped", STACKS, "go", 1000),
    Workload("net_echo_64", NET_TIME, "kanal go epoll pthread", 50000),
    Workload("net_echo_256", NET_TIME, "kanal go epoll", 50000),
    Workload("net_echo_1000", NET_TIME, "kanal go epoll", 50000),
    Workload("net_echo_stream", NET_TIME, "kanal go", 200),
    Workload("timer_100k", NET_TIME, "kanal go", 100000, fixed=True),
    Workload("timer_100k_cpu", NET_TIME, "kanal go", 100000, fixed=True),
    Workload("timer_100k_idle", NET_TIME, "kanal go", 100000, fixed=True),
]


def groups():
    """The sections, in the order their first workload appears."""
    out = []
    for w in WORKLOADS:
        if w.group not in out:
            out.append(w.group)
    return out


def is_kanal(impl):
    """kanal's own impls (kanal, kanal_go, kanal_batched, ...): a failure of
    one of them fails the run; a peer's is a note."""
    return impl.startswith("kanal")


def targeted():
    """Workloads with a target against a peer (report.py's TARGETS): they
    also run pinned to one CPU."""
    import report  # late: report imports this module
    return {t.workload for t in report.TARGETS if t.kind == "peer"}


# Column order of every table: kanal first (on threads, then Go-shaped as
# kn_go tasks), then the baselines.
IMPL_ORDER = ["kanal", "kanal_go", "kanal_go_traced", "kanal_batched", "kanal_go_batched", "pthread", "epoll",
              "sem_t", "go", "ck", "crossbeam", "tbb"]

OPTIONAL_FIELDS = ["p50_ns", "p99_ns", "p999_ns", "syscalls_per_op", "allocs_per_op",
                   "steady_syscalls_per_op", "waits_per_op", "release_ns_per_op", "rss_bytes_per_op",
                   "peak_rss_kb", "wall_s"]

# Seconds a process takes besides its timed region (start, setup, exit),
# for estimates when no earlier run recorded its wall time.
RUN_OVERHEAD_S = 0.1

# Default seconds before a peer's run counts as failed (--peer-timeout).
PEER_TIMEOUT_S = 40


def impl_key(impl):
    if impl in IMPL_ORDER:
        return (IMPL_ORDER.index(impl), impl)
    return (len(IMPL_ORDER), impl)


def workload_key(name):
    for i, w in enumerate(WORKLOADS):
        if w.name == name:
            return (i, name)
    return (len(WORKLOADS), name)


def record_key(rec):
    # The all-CPU run before the pinned one, kanal before its peers.
    return workload_key(rec["workload"]) + (-rec["cpus"],) + impl_key(rec["impl"])


# Formatting shared with report.py.

def fmt_ns(v):
    if v is None:
        return "-"
    if v < 10:
        return "%.2f" % v
    if v < 1000:
        return "%.1f" % v
    return "{:,.0f}".format(v)


def fmt_ops(v):
    if v is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return "%.2f%s" % (v / div, unit)
    return "%.1f" % v


def fmt_ratio(v):
    return "-" if v is None else "%.2fx" % v


def throughput_ratio(a, b):
    """a's ops/s over b's: > 1 means a is faster."""
    if not a or not b or a.get("failed") or b.get("failed"):
        return None
    x, y = a.get("ops_per_sec"), b.get("ops_per_sec")
    if not x or not y:
        return None
    return x / y


class Binary:
    """An implementation binary. known is the set of (workload, impl) pairs
    it lists, or None when it cannot list them: then exit status 2 tells."""

    def __init__(self, label, path):
        self.label = label
        self.path = path
        self.known = None
        if not self.present():
            return
        try:
            p = subprocess.run([path, "--list"], capture_output=True,
                               text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return
        if p.returncode != 0:
            return
        pairs = set()
        for line in p.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                pairs.add((parts[0], parts[1]))
        if pairs:
            self.known = pairs

    def present(self):
        return os.path.isfile(self.path) and os.access(self.path, os.X_OK)

    def provides(self, workload, impl):
        if not self.present():
            return False
        return self.known is None or (workload, impl) in self.known


def child_env(impl=None):
    env = dict(os.environ)
    # Go must size its runtime from the affinity mask, as the C side does.
    env.pop("GOMAXPROCS", None)
    # An impl named *_traced runs with the execution trace on (kn_trace_flush
    # in kanal/pool.h); the file is written at its exit and removed after.
    env.pop("KANAL_TRACE", None)
    if impl and impl.endswith("_traced"):
        env["KANAL_TRACE"] = trace_file()
    return env


def trace_file():
    return os.path.join(tempfile.gettempdir(), "kn-bench-trace-%d.json" % os.getpid())


def run_one(cmd, cpu, timeout, impl=None):
    """Run one process; returns (status, result-or-message), status one of
    "ok", "skip" (exit 2: the pair is unknown), "fail"."""
    preexec = None
    if cpu is not None:
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cpu)] + cmd
        else:
            preexec = lambda: os.sched_setaffinity(0, {cpu})
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=child_env(impl), preexec_fn=preexec,
                             start_new_session=True)
    except OSError as e:
        return "fail", "cannot start: %s" % e
    try:
        out, err = p.communicate(timeout=timeout)
    except (subprocess.TimeoutExpired, KeyboardInterrupt) as e:
        # Its own session (no terminal signals reach it): the kill reaches
        # whatever it started too.
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        if isinstance(e, KeyboardInterrupt):
            raise
        return "fail", "timeout after %gs" % timeout
    if p.returncode == 2:
        return "skip", last_line(err) or "exit status 2"
    res = None
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                res = json.loads(line)
            except ValueError:
                pass
            break
    if p.returncode < 0:
        return "fail", "killed by signal %d" % -p.returncode
    if res is None:
        return "fail", "exit status %d, no JSON line: %s" % (
            p.returncode, last_line(err) or last_line(out) or "no output")
    if res.get("check") != "ok":
        return "fail", "check: %s" % res.get("check")
    if p.returncode != 0:
        return "fail", "exit status %d: %s" % (p.returncode, last_line(err))
    if not isinstance(res.get("ns_per_op"), (int, float)):
        try:
            res["ns_per_op"] = res["ns"] / res["items"]
        except (KeyError, TypeError, ZeroDivisionError):
            return "fail", "no ns_per_op in %s" % json.dumps(res)
    return "ok", res


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1].strip() if lines else ""


def median_of(samples, field):
    vals = [s[field] for s in samples if isinstance(s.get(field), (int, float))]
    if len(vals) != len(samples) or not vals:
        return None
    return statistics.median(vals)


def rounded(v):
    """Six significant digits: more than the runs' spread, less noise in git."""
    return None if v is None else float("%.6g" % v)


def summarize(workload, impl, cpus, items, samples, errors):
    rec = {"workload": workload, "impl": impl, "cpus": cpus}
    nspo = [s["ns_per_op"] for s in samples]
    if nspo:
        ops = [1e9 / v for v in nspo] if min(nspo) > 0 else None
        rec["ops_per_sec"] = rounded(statistics.median(ops)) if ops else None
        rec["ns_per_op"] = rounded(statistics.median(nspo))
        rec["min"] = rounded(min(nspo))
        rec["max"] = rounded(max(nspo))
    else:
        rec.update(ops_per_sec=None, ns_per_op=None, min=None, max=None)
    rec["reps"] = len(samples)
    rec["items"] = items
    seq = sorted({k for smp in samples for k in smp if k.startswith("seq_")})
    for field in OPTIONAL_FIELDS + seq:
        v = median_of(samples, field)
        if v is not None:
            rec[field] = rounded(v)
    if errors:
        rec["failed"] = "%d of %d runs failed; first: %s" % (
            len(errors), len(errors) + len(samples), errors[0])
    return rec


class Plan:
    """The runs to make: (workload, cpus, pinned cpu or None, items, impls).
    notes: what is left out and why (peer notes of the report)."""

    def __init__(self, workloads, cbin, peer_bins, ncpu, first_cpu, scale):
        self.steps = []
        self.notes = []
        pin = targeted()
        for w in workloads:
            impls = []
            extra = sorted({i for (n, i) in (cbin.known or ()) if n == w.name}
                           - set(w.impls), key=impl_key)
            for impl in w.impls + extra:
                b = peer_bins.get(impl, cbin)
                if b.provides(w.name, impl):
                    impls.append((impl, b))
                elif b.present():
                    self.notes.append("skip %s %s: not in %s --list" % (
                        w.name, impl, b.label))
                else:
                    self.notes.append("skip %s %s: no %s" % (w.name, impl, b.label))
            items = w.items if w.fixed else max(1, int(round(w.items * scale)))
            cpu_settings = [(ncpu, None)]
            if (w.pinned or w.name in pin) and ncpu > 1:
                cpu_settings.append((1, first_cpu))
            for cpus, cpu in cpu_settings:
                here = []
                for impl, b in impls:
                    why = w.skip_reason(impl, cpus)
                    if why:
                        self.notes.append("skip %s %s cpus=%d: %s" % (
                            w.name, impl, cpus, why))
                    else:
                        here.append((impl, b))
                self.steps.append((w, cpus, cpu, items, here))
        if cbin.known:
            names = {w.name for w in WORKLOADS}
            for n in sorted({n for (n, _) in cbin.known} - names):
                self.notes.append("kn-bench lists workload %s, which run.py "
                                  "does not know" % n)

    def estimate(self, reps, old):
        """Seconds the plan should take, from the wall times of the earlier
        results in old (or their timed regions plus RUN_OVERHEAD_S), the
        peers' run times held at most to their timeout."""
        prev = {(r["workload"], r["impl"], r["cpus"]): r for r in old}
        total, unknown = 0.0, 0
        for (w, cpus, _, items, impls) in self.steps:
            for impl, _ in impls:
                r = prev.get((w.name, impl, cpus))
                if r and r.get("wall_s"):
                    t = r["wall_s"] * items / max(1, r.get("items") or items)
                elif r and r.get("ns_per_op"):
                    t = r["ns_per_op"] * items / 1e9 + RUN_OVERHEAD_S
                elif r and r.get("failed"):
                    t = PEER_TIMEOUT_S  # a timed-out peer, dropped after one run
                    total += t
                    continue
                else:
                    unknown += 1
                    t = 0.5
                total += t * reps
        return total, unknown


class Progress:
    """The "[12/40] ..." lines on stderr; total shrinks as pairs drop out."""

    def __init__(self, total, reps):
        self.total = total
        self.reps = reps
        self.done = 0

    def start(self, w, cpus, rep, impl):
        self.done += 1
        print("[%d/%d] %s cpus=%d rep %d/%d %s ..." % (
            self.done, self.total, w.name, cpus, rep + 1, self.reps, impl),
            end="", file=sys.stderr, flush=True)

    def end(self, text):
        print(" " + text, file=sys.stderr)


def timeout_for(impl, args):
    return args.timeout if is_kanal(impl) else args.peer_timeout


def run_step(step, args, progress):
    """All repetitions of one workload at one CPU setting, impls interleaved,
    the order rotated by one each repetition. Returns (records, notes)."""
    w, cpus, pin, items, impls = step
    samples = {i: [] for i, _ in impls}
    errors = {i: [] for i, _ in impls}
    active = list(impls)
    for rep in range(args.reps):
        k = rep % len(active) if active else 0
        for impl, b in active[k:] + active[:k]:
            progress.start(w, cpus, rep, impl)
            t0 = time.monotonic()
            status, res = run_one([b.path, "--workload", w.name, "--impl", impl,
                                   "--items", str(items)], pin,
                                  timeout_for(impl, args), impl)
            wall = time.monotonic() - t0
            if impl.endswith("_traced") and os.path.exists(trace_file()):
                os.unlink(trace_file())
            if status == "ok":
                res["wall_s"] = wall
                samples[impl].append(res)
                progress.end("%s ns/op (%.0f ms)" % (fmt_ns(res["ns_per_op"]),
                                                     wall * 1000))
                continue
            progress.end("%s: %s" % ("skipped" if status == "skip" else "FAILED", res))
            if status == "fail":
                errors[impl].append(res)
            # An unknown pair stays unknown; a hung one would hang again.
            if status == "skip" or res.startswith("timeout"):
                progress.total -= args.reps - rep - 1
                active = [a for a in active if a[0] != impl]
                if status == "skip":
                    del samples[impl], errors[impl]
    records = [summarize(w.name, i, cpus, items, samples[i], errors[i])
               for i, _ in impls if i in samples]
    notes = []
    timed = [s["ns"] / 1e6 for s in samples.get("kanal", []) if "ns" in s]
    if timed and not w.fixed and not 20 <= statistics.median(timed) <= 500:
        notes.append("note: kanal %s cpus=%d: median timed region %.0f ms; the "
                     "default items aim at 50-200 ms" % (
                         w.name, cpus, statistics.median(timed)))
    return records, notes


def git_info():
    def git(*args):
        try:
            p = subprocess.run(["git", "--no-optional-locks", "-C", ROOT] + list(args),
                               capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None
    commit = git("rev-parse", "HEAD") or "none"
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, bool(status)


def first_line_of(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return last_line(p.stdout.splitlines()[0]) if p.returncode == 0 and p.stdout else None


def cmake_cache(build):
    vals = {}
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                if ":" in line and "=" in line and not line.startswith(("//", "#")):
                    key, _, val = line.partition("=")
                    vals[key.split(":")[0]] = val.strip()
    except OSError:
        pass
    return vals


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "nproc": len(os.sched_getaffinity(0)),
            "kernel": os.uname().release, "arch": os.uname().machine}


def build_meta(args, old, ran, date, cache, tree):
    """meta.json: this run's circumstances, and under "runs" which run
    produced which workloads of latest.json (--only builds it up piecewise).
    tree: git_info() taken before the run wrote any result file."""
    commit, dirty = tree
    cc = cache.get("CMAKE_C_COMPILER")
    meta = {
        "date": date,
        "machine": machine(),
        "command": shlex.join(["python3", os.path.relpath(sys.argv[0], ROOT)]
                              + sys.argv[1:]),
        "invoked_as": os.environ.get("KN_BENCH_COMMAND"),
        "git_commit": commit,
        "git_dirty": dirty,
        "reps": args.reps,
        "scale": args.scale,
        "build_type": cache.get("CMAKE_BUILD_TYPE"),
        "cc": first_line_of([cc, "--version"]) if cc else None,
        "go": first_line_of(["go", "version"]),
        "rustc": first_line_of(["/usr/bin/rustc", "--version"]),
    }
    runs = []
    for r in (old.get("runs", []) if args.only else []):
        r["workloads"] = [w for w in r.get("workloads", []) if w not in ran]
        if r["workloads"]:
            runs.append(r)
    runs.append({k: meta[k] for k in ("date", "command", "git_commit", "git_dirty",
                                      "reps")})
    runs[-1]["workloads"] = ran
    meta["runs"] = runs
    return meta


def load_json(path, default):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def write_json(path, data):
    """Lists one element per line, so a new run diffs record by record."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        if isinstance(data, list):
            f.write("[\n" + ",\n".join(json.dumps(r) for r in data) + "\n]\n")
        else:
            json.dump(data, f, indent=1)
            f.write("\n")
    os.replace(tmp, path)


def print_table(records):
    kanal = {(r["workload"], r["cpus"]): r for r in records if r["impl"] == "kanal"}
    rows = [("workload", "cpus", "impl", "ns/op", "ops/s", "min-max ns/op", "kanal/impl")]
    for r in records:
        if r.get("failed") and r["reps"] == 0:
            rows.append((r["workload"], str(r["cpus"]), r["impl"], "FAILED",
                         "", "", r["failed"]))
            continue
        ratio = "" if r["impl"] == "kanal" else fmt_ratio(
            throughput_ratio(kanal.get((r["workload"], r["cpus"])), r))
        rows.append((r["workload"], str(r["cpus"]), r["impl"],
                     fmt_ns(r["ns_per_op"]), fmt_ops(r["ops_per_sec"]),
                     "%s-%s" % (fmt_ns(r["min"]), fmt_ns(r["max"])),
                     "FAILED: " + r["failed"] if r.get("failed") else ratio))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.rjust(w) if 3 <= i <= 5 else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells + [row[-1]]).rstrip())


def select(only):
    prefixes = [p for arg in only for p in arg.split(",") if p]
    if not prefixes:
        return WORKLOADS
    return [w for w in WORKLOADS if any(w.name.startswith(p) for p in prefixes)]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], metavar="PREFIX",
                    help="run only workloads starting with PREFIX (repeatable, "
                         "or comma-separated); results merge into --out")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    ap.add_argument("--build", default="build", help="CMake build directory "
                    "holding bench/kn-bench (default build)")
    ap.add_argument("--go", help="directory holding kn-bench-go (default BUILD/go)")
    ap.add_argument("--rust", help="directory holding kn-bench-rust (default BUILD/rust)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench/results/latest.json"),
                    help="results file; meta.json goes beside it")
    ap.add_argument("--no-report", action="store_true",
                    help="do not regenerate BENCHMARKS.md and bench/plot/")
    ap.add_argument("--timeout", type=float, default=60,
                    help="seconds before one run of a kanal impl counts as "
                         "failed (default 60)")
    ap.add_argument("--peer-timeout", type=float, default=PEER_TIMEOUT_S,
                    help="the same for a peer (go, pthread, ck, ...; default "
                         "%g): a peer that times out is a note, not a failure"
                         % PEER_TIMEOUT_S)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the default item counts (e.g. 0.01 for a smoke run)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the plan and an estimate of its duration "
                         "(from the results in --out), and exit")
    args = ap.parse_args()
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    if args.go is None:
        args.go = os.path.join(args.build, "go")
    if args.rust is None:
        args.rust = os.path.join(args.build, "rust")
    return args


def interrupted(signum, frame):
    raise KeyboardInterrupt


def main():
    args = parse_args()
    # Children run in sessions of their own: on SIGTERM, as on Ctrl-C,
    # run_one kills the running one before the driver goes.
    signal.signal(signal.SIGTERM, interrupted)
    workloads = select(args.only)
    if not workloads:
        sys.exit("run.py: no workload matches --only %s" % ",".join(args.only))
    cbin = Binary("kn-bench", os.path.join(args.build, "bench", "kn-bench"))
    peer_bins = {
        "go": Binary("kn-bench-go", os.path.join(args.go, "kn-bench-go")),
        "crossbeam": Binary("kn-bench-rust", os.path.join(args.rust, "kn-bench-rust")),
    }
    for b in [cbin] + list(peer_bins.values()):
        if not b.present():
            print("note: %s not found at %s" % (b.label, b.path), file=sys.stderr)
    affinity = sorted(os.sched_getaffinity(0))
    plan = Plan(workloads, cbin, peer_bins, len(affinity), affinity[0], args.scale)
    for n in plan.notes:
        print("note: " + n, file=sys.stderr)
    cache = cmake_cache(args.build)
    if cache.get("CMAKE_BUILD_TYPE", "Release") != "Release":
        print("warning: %s is a %s build" % (args.build, cache["CMAKE_BUILD_TYPE"]),
              file=sys.stderr)
    total = sum(len(impls) * args.reps for (*_, impls) in plan.steps)
    if args.dry_run:
        for (w, cpus, pin, items, impls) in plan.steps:
            print("%-26s cpus=%d items=%-9d %s" % (
                w.name, cpus, items, " ".join(i for i, _ in impls)))
        secs, unknown = plan.estimate(args.reps, load_json(args.out, []))
        print("%d runs, about %.0f minutes%s" % (
            total, secs / 60, "" if not unknown else
            " (%d runs without an earlier result counted as 0.5 s)" % unknown))
        return 0
    if total == 0:
        sys.exit("run.py: nothing to run (no binary provides the selected workloads)")

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tree = git_info()
    started = time.monotonic()
    progress = Progress(total, args.reps)
    records = []
    notes = []
    try:
        for step in plan.steps:
            recs, note = run_step(step, args, progress)
            records += recs
            notes += note
    except KeyboardInterrupt:
        sys.exit("\nrun.py: interrupted; %s left as it was" % os.path.relpath(args.out))
    save(args, records, date, cache, tree, plan.notes)

    print()
    print_table(sorted(records, key=record_key))
    for n in notes:
        print(n)
    print("\n%d runs in %.0f s; results in %s" % (
        progress.done, time.monotonic() - started, os.path.relpath(args.out)))
    if not args.no_report:
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "report.py"),
                        "--results", args.out], check=False)
    return verdict(records, plan.notes)


def verdict(records, plan_notes):
    """Exit status: 1 if a kanal run failed; a peer's failure or timeout,
    and a peer left out, are notes."""
    failed = [r for r in records if r.get("failed")]
    peers = [r for r in failed if not is_kanal(r["impl"])]
    ours = [r for r in failed if is_kanal(r["impl"])]
    if peers or plan_notes:
        print("\nPeer notes (not failures of this run):")
        for r in peers:
            print("  %s %s cpus=%d: %s" % (r["workload"], r["impl"], r["cpus"],
                                          r["failed"]))
        for n in plan_notes:
            print("  " + n)
    if ours:
        print("\n%d kanal workload/impl pairs FAILED:" % len(ours))
        for r in ours:
            print("  %s %s cpus=%d: %s" % (r["workload"], r["impl"], r["cpus"],
                                          r["failed"]))
        return 1
    return 0


def save(args, records, date, cache, tree, plan_notes):
    """latest.json and meta.json; with --only, the workloads that ran replace
    their old records and the others stay (so do the plan notes of the
    workloads that did not run)."""
    ran = sorted({r["workload"] for r in records}, key=workload_key)
    old = load_json(args.out, []) if args.only else []
    merged = [r for r in old if r.get("workload") not in ran] + records
    write_json(args.out, sorted(merged, key=record_key))
    meta_path = os.path.join(os.path.dirname(os.path.abspath(args.out)), "meta.json")
    old_meta = load_json(meta_path, {})
    meta = build_meta(args, old_meta, ran, date, cache, tree)
    kept = [n for n in old_meta.get("notes", []) if args.only and
            n.split()[1] not in ran]
    meta["notes"] = list(dict.fromkeys(kept + plan_notes))
    write_json(meta_path, meta)


if __name__ == "__main__":
    sys.exit(main())
