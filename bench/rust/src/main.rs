//! kn-bench-rust: the channel workloads of bench/WORKLOADS.md on
//! crossbeam-channel, impl "crossbeam", speaking the protocol of kn-bench:
//!
//!   kn-bench-rust --workload W --impl crossbeam --items N   one JSON line
//!   kn-bench-rust --list                                     "W crossbeam" lines
//!
//! Exit status 2: the pair is unknown. Every workload mirrors the C actors
//! (bench/chan_workloads.c) and the Go programs (bench/go/chan.go): the same
//! capacities, the same split of values, the same checks, the clock started
//! before the threads and stopped after the last value is tallied.

use crossbeam_channel::{bounded, never, select, Receiver, Sender};
use std::process::exit;
use std::thread;
use std::time::Instant;

const IMPL: &str = "crossbeam";

struct Outcome {
    ns: u64,
    check: String,
    lat: Vec<u64>,
}

fn ok_if(count: u64, want_count: u64, sum: u64, want_sum: u64) -> String {
    if count != want_count {
        format!("count {}, want {}", count, want_count)
    } else if sum != want_sum {
        format!("sum {}, want {}", sum, want_sum)
    } else {
        "ok".to_string()
    }
}

/// 0 + 1 + ... + (n - 1), wrapping as the C side's does.
fn sum_upto(n: u64) -> u64 {
    if n % 2 == 0 {
        (n / 2).wrapping_mul(n.wrapping_sub(1))
    } else {
        n.wrapping_mul((n - 1) / 2)
    }
}

fn elapsed_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// One producer sends 0..n-1 into capacity 1024; the consumer (this thread)
/// checks the order.
fn spsc(n: u64) -> Outcome {
    let (tx, rx) = bounded::<i64>(1024);
    let t0 = Instant::now();
    let prod = thread::spawn(move || {
        for v in 0..n {
            tx.send(v as i64).expect("receiver gone");
        }
    });
    let (mut count, mut sum, mut disorder) = (0u64, 0u64, 0u64);
    for v in rx.iter() {
        disorder += (v as u64 != count) as u64;
        count += 1;
        sum = sum.wrapping_add(v as u64);
    }
    let ns = elapsed_ns(t0);
    prod.join().unwrap();
    let check = if disorder != 0 {
        format!("{} values out of order", disorder)
    } else {
        ok_if(count, n, sum, sum_upto(n))
    };
    Outcome { ns, check, lat: Vec::new() }
}

/// p producers each send their share into one channel of capacity cap; the
/// channel closes when the last producer is done (its Sender dropped); p
/// consumers receive until then.
fn mpmc(p: u64, cap: usize, n: u64) -> Outcome {
    let (tx, rx) = bounded::<i64>(cap);
    let t0 = Instant::now();
    let consumers: Vec<_> = (0..p)
        .map(|_| {
            let rx = rx.clone();
            thread::spawn(move || {
                let (mut c, mut s) = (0u64, 0u64);
                for v in rx.iter() {
                    c += 1;
                    s = s.wrapping_add(v as u64);
                }
                (c, s)
            })
        })
        .collect();
    drop(rx);
    let producers: Vec<_> = (0..p)
        .map(|k| {
            let tx = tx.clone();
            let (lo, hi) = (n * k / p, n * (k + 1) / p);
            thread::spawn(move || {
                for v in lo..hi {
                    tx.send(v as i64).expect("receivers gone");
                }
            })
        })
        .collect();
    drop(tx);
    for h in producers {
        h.join().unwrap();
    }
    let (mut count, mut sum) = (0u64, 0u64);
    for h in consumers {
        let (c, s) = h.join().unwrap();
        count += c;
        sum = sum.wrapping_add(s);
    }
    let ns = elapsed_ns(t0);
    Outcome { ns, check: ok_if(count, n, sum, sum_upto(n)), lat: Vec::new() }
}

/// n round trips over two rendezvous channels, each timed; the echo thread
/// is up before the clock starts.
fn pingpong(n: u64) -> Outcome {
    let (to_echo, echo_in) = bounded::<i64>(0);
    let (echo_out, from_echo) = bounded::<i64>(0);
    let echo = thread::spawn(move || {
        for v in echo_in.iter() {
            if echo_out.send(v).is_err() {
                break;
            }
        }
    });
    let mut lat = Vec::with_capacity(n as usize);
    let mut check = "ok".to_string();
    let t0 = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        to_echo.send(i as i64).expect("echo gone");
        let v = from_echo.recv().expect("echo gone");
        lat.push(t.elapsed().as_nanos() as u64);
        if v != i as i64 {
            check = format!("reply {}, want {}", v, i);
            break;
        }
    }
    let ns = elapsed_ns(t0);
    drop(to_echo);
    echo.join().unwrap();
    Outcome { ns, check, lat }
}

/// Every 16th item carries its send time (WORKLOADS.md, select_2_recv).
const SEL_STAMP_EVERY: u64 = 16;

/// Two producers, one channel of capacity 128 each; one receiver selects
/// over both until both are closed (a closed side becomes never(), Go's nil
/// channel).
fn select2(n: u64) -> Outcome {
    let base = Instant::now();
    let (ta, ra) = bounded::<(i64, u64)>(128);
    let (tb, rb) = bounded::<(i64, u64)>(128);
    let produce = move |tx: Sender<(i64, u64)>, lo: u64, hi: u64| {
        move || {
            for i in lo..hi {
                let t = if i % SEL_STAMP_EVERY == 0 {
                    base.elapsed().as_nanos() as u64 + 1
                } else {
                    0
                };
                tx.send((i as i64, t)).expect("receiver gone");
            }
        }
    };
    let mut lat = Vec::with_capacity((n / SEL_STAMP_EVERY + 1) as usize);
    let (mut count, mut sum) = (0u64, 0u64);
    let t0 = Instant::now();
    let pa = thread::spawn(produce(ta, 0, n / 2));
    let pb = thread::spawn(produce(tb, n / 2, n));
    let (mut a, mut b): (Receiver<(i64, u64)>, Receiver<(i64, u64)>) = (ra, rb);
    let (mut open_a, mut open_b) = (true, true);
    while open_a || open_b {
        let got = select! {
            recv(a) -> m => match m {
                Ok(x) => Some(x),
                Err(_) => { a = never(); open_a = false; None }
            },
            recv(b) -> m => match m {
                Ok(x) => Some(x),
                Err(_) => { b = never(); open_b = false; None }
            },
        };
        if let Some((v, t)) = got {
            if t != 0 {
                lat.push(base.elapsed().as_nanos() as u64 + 1 - t);
            }
            count += 1;
            sum = sum.wrapping_add(v as u64);
        }
    }
    let ns = elapsed_ns(t0);
    pa.join().unwrap();
    pb.join().unwrap();
    Outcome { ns, check: ok_if(count, n, sum, sum_upto(n)), lat }
}

const WORKLOADS: &[(&str, fn(u64) -> Outcome)] = &[
    ("chan_spsc", spsc),
    ("chan_mpmc_2p2c", |n| mpmc(2, 1024, n)),
    ("chan_mpmc_4p4c", |n| mpmc(4, 1024, n)),
    ("chan_mpmc_4p4c_cap1", |n| mpmc(4, 1, n)),
    ("chan_mpmc_4p4c_cap0", |n| mpmc(4, 0, n)),
    ("chan_pingpong_unbuffered", pingpong),
    ("select_2_recv", select2),
];

/// Nearest rank: the ceil(q * n)-th smallest, q in per mille (as bench/main.c).
fn rank(sorted: &[u64], per_mille: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len() as u64;
    let i = (n * per_mille + 999) / 1000;
    sorted[(i.max(1) - 1) as usize]
}

fn usage() -> ! {
    eprintln!("usage: kn-bench-rust --workload W --impl crossbeam --items N");
    eprintln!("       kn-bench-rust --list");
    exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() == 1 && args[0] == "--list" {
        for (name, _) in WORKLOADS {
            println!("{} {}", name, IMPL);
        }
        return;
    }
    let (mut workload, mut imp, mut items) = (None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--workload" => workload = Some(value.clone()),
            "--impl" => imp = Some(value.clone()),
            "--items" => items = value.parse::<u64>().ok(),
            _ => usage(),
        }
    }
    let (workload, imp, items) = match (workload, imp, items) {
        (Some(w), Some(i), Some(n)) if n > 0 => (w, i, n),
        _ => usage(),
    };
    let run = match WORKLOADS.iter().find(|(name, _)| *name == workload) {
        Some((_, f)) if imp == IMPL => f,
        _ => {
            eprintln!("kn-bench-rust: no workload {:?} for impl {:?}", workload, imp);
            exit(2)
        }
    };
    let mut out = run(items);
    let mut line = format!(
        "{{\"workload\":\"{}\",\"impl\":\"{}\",\"items\":{},\"ns\":{},\"ns_per_op\":{:.3}",
        workload,
        IMPL,
        items,
        out.ns,
        out.ns as f64 / items as f64
    );
    if !out.lat.is_empty() {
        out.lat.sort_unstable();
        line += &format!(
            ",\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{}",
            rank(&out.lat, 500),
            rank(&out.lat, 990),
            rank(&out.lat, 999)
        );
    }
    line += &format!(",\"check\":\"{}\"}}", out.check.replace('"', "'"));
    println!("{}", line);
    if out.check != "ok" {
        exit(1);
    }
}
