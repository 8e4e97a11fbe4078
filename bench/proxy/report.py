#!/usr/bin/env python3
"""Turns run.sh's per-round measurements (TSV: target round metric value) into the markdown
report: medians per target, their spread, Ferry's ratio to each peer (and of a second Ferry
build to the first), every round, and how it was measured."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from rounds import Rounds, fmt  # noqa: E402

NAMES = {"ferry": "Ferry", "ferry-uring": "Ferry io_uring", "haproxy": "HAProxy", "nginx": "nginx",
         "direct": "origin alone"}


def cpu_cell(med, t):
    """CPU µs per request with its user + system split."""
    total, user, sys_ = (med(t, m) for m in ("cpu_us_per_req", "cpu_user_us_per_req",
                                              "cpu_sys_us_per_req"))
    if total is None:
        return "–"
    return f"{fmt(total, 1)} ({fmt(user, 1)} + {fmt(sys_, 1)})"


def spread(data, t, metric, digits):
    values = [v for v in data.get(t, {}).get(metric, {}).values() if v is not None]
    if not values:
        return "–"
    return f"{fmt(min(values), digits)} – {fmt(max(values), digits)}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("--targets", required=True)
    ap.add_argument("--requested", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--versions", required=True)
    ap.add_argument("--params", required=True)
    args = ap.parse_args()

    rounds_read = Rounds(args.tsv)
    data = rounds_read.data  # name -> metric -> round -> value
    med = rounds_read.median

    targets = args.targets.split()
    missing = [t for t in args.requested.split() if t not in targets]
    out = []
    p = out.append
    p("# HTTP/1.1 reverse proxy: Ferry vs HAProxy vs nginx")
    p("")
    p(f"Machine: {args.machine}. Versions: {args.versions}.")
    p("")
    p(f"Command: `{args.command}`")
    p("")
    p(f"Parameters: {args.params}.")
    p("")
    for t in missing:
        p(f"**{NAMES.get(t, t)} was not measured in this run** (not available).")
        p("")
    syscalls = any("syscalls_per_req" in data.get(t, {}) for t in targets)
    uring_ops = any("uring_ops_per_req" in data.get(t, {}) for t in targets)
    p("Medians over the rounds (CPU: utime + stime of the target's processes, all threads, during "
      "the throughput run, per request; user + system in brackets):")
    p("")
    p("| target | req/s (c=50) | CPU µs/req | p50 ms | p99 ms | rate of the latency run (req/s) "
      "| RSS idle (MiB) | RSS per 1,000 idle conns (KiB) | kept after they close (KiB) |"
      + (" syscalls/req |" if syscalls else "") + (" io_uring ops/req |" if uring_ops else ""))
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if syscalls else "")
      + ("---:|" if uring_ops else ""))
    for t in targets:
        idle = med(t, "rss_idle_kib")
        p(f"| {NAMES.get(t, t)} | {fmt(med(t, 'rps'))} | {cpu_cell(med, t)} "
          f"| {fmt(med(t, 'p50_ms'), 3)} "
          f"| {fmt(med(t, 'p99_ms'), 3)} | {fmt(med(t, 'lat_rps'))} "
          f"| {fmt(idle / 1024 if idle is not None else None, 1)} "
          f"| {fmt(med(t, 'rss_per_1k_kib'))} | {fmt(med(t, 'kept_after_close_kib'))} |"
          + (f" {fmt(med(t, 'syscalls_per_req'), 2)} |" if syscalls else "")
          + (f" {fmt(med(t, 'uring_ops_per_req'), 2)} |" if uring_ops else ""))
    if "direct" in data:
        p(f"| (origin alone, no proxy) | {fmt(med('direct', 'rps'))} | {cpu_cell(med, 'direct')} "
          "| | | | | | |" + (" |" if syscalls else "") + (" |" if uring_ops else ""))
    p("")
    p("Spread over the rounds (lowest – highest):")
    p("")
    p("| target | req/s | CPU µs/req | p99 ms |")
    p("|---|---:|---:|---:|")
    for t in targets:
        p(f"| {NAMES.get(t, t)} | {spread(data, t, 'rps', 0)} "
          f"| {spread(data, t, 'cpu_us_per_req', 1)} | {spread(data, t, 'p99_ms', 3)} |")
    p("")

    ferries = [t for t in targets if t.startswith("ferry")]
    peers = [t for t in targets if not t.startswith("ferry")]
    pairs = [(f, t) for f in ferries for t in peers]
    base = "ferry" if "ferry" in ferries else (ferries[0] if ferries else None)
    pairs += [(f, base) for f in ferries if f != base]  # a second Ferry build against the first
    if pairs:
        p("Ferry relative to each peer (medians; req/s: above 1 is better for Ferry; CPU, latency "
          "and memory: below 1 is better for Ferry):")
        p("")
        p("| pair | req/s | CPU µs/req | p50 | p99 | RSS idle | RSS per idle conn |")
        p("|---|---:|---:|---:|---:|---:|---:|")
        for f, t in pairs:
            cells = []
            for metric in ("rps", "cpu_us_per_req", "p50_ms", "p99_ms", "rss_idle_kib",
                           "rss_per_1k_kib"):
                a, b = med(f, metric), med(t, metric)
                cells.append(f"{a / b:.2f}×" if a is not None and b else "–")
            p(f"| {NAMES.get(f, f)} / {NAMES.get(t, t)} | " + " | ".join(cells) + " |")
        p("")
    elif not ferries:
        p("No ratios: Ferry was not measured in this run.")
        p("")

    p("<details><summary>Every round</summary>")
    p("")
    p("| target | round | req/s | requests | CPU µs/req | user µs/req | sys µs/req | p50 ms "
      "| p99 ms | latency-run req/s | RSS idle KiB "
      "| RSS before idle conns KiB | per 1,000 conns KiB | after close KiB |"
      + (" syscalls/req |" if syscalls else "") + (" io_uring ops/req |" if uring_ops else ""))
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
      + ("---:|" if syscalls else "") + ("---:|" if uring_ops else ""))
    rounds = sorted({r for t in data for m in data[t] for r in data[t][m]})
    for r in rounds:
        for t in ["direct"] + targets:
            d = data.get(t)
            if not d or r not in d.get("rps", {}):
                continue
            g = lambda m, digits=0: fmt(d.get(m, {}).get(r), digits)  # noqa: E731
            p(f"| {NAMES.get(t, t)} | {r} | {g('rps')} | {g('requests')} "
              f"| {g('cpu_us_per_req', 2)} | {g('cpu_user_us_per_req', 2)} "
              f"| {g('cpu_sys_us_per_req', 2)} | {g('p50_ms', 3)} | {g('p99_ms', 3)} "
              f"| {g('lat_rps')} | {g('rss_idle_kib')} | {g('rss_before_idle_kib')} "
              f"| {g('rss_per_1k_kib')} | {g('rss_after_close_kib')} |"
              + (f" {g('syscalls_per_req', 2)} |" if syscalls else "")
              + (f" {g('uring_ops_per_req', 2)} |" if uring_ops else ""))
    p("")
    p("</details>")
    p("")
    p("How it is measured (bench/proxy/run.sh; the configs sit next to it):")
    p("")
    p("- One nginx origin (1 worker, a 42-byte fixed body, keep-alive, logging off) serves every "
      "target. Each target runs with one worker/thread, keep-alive to the origin, logging off, "
      "and adds x-forwarded-for, x-forwarded-proto and x-request-id (kept if sent); the script "
      "checks this through each target before measuring.")
    p("- Targets are interleaved in every round (Ferry, HAProxy, nginx, ...), each started fresh. "
      "All processes share the same cores as wrk and the origin, so only same-run ratios count.")
    p("- **req/s**: wrk at a fixed connection count after a short warm-up.")
    p("- **CPU µs/req**: utime + stime from /proc/PID/stat of the target's processes (nginx: "
      "master + worker; the figure of a process counts all its threads, io_uring's kernel "
      "workers included) read right before and right after that wrk run, divided by the "
      "requests wrk completed in it. Clock ticks are 10 ms, so a 5 s run at 40k req/s is "
      "resolved to about 0.5%. For the origin-alone row: the origin's own CPU.")
    if syscalls:
        p("- **syscalls/req**: `perf stat -e raw_syscalls:sys_enter` on the target's processes "
          "over an extra wrk run of the same shape; **io_uring ops/req**: "
          "`io_uring:io_uring_submit_req` over the same run (operations submitted through "
          "io_uring, not system calls of their own).")
    p("- **p50/p99**: wrk cannot hold a fixed rate (and its percentiles are not corrected for "
      "coordinated omission). Instead each of a few connections pauses a fixed time between "
      "requests (wrk's `delay()` hook), which keeps the load well below saturation; the rate "
      "achieved is shown next to the latencies so they can be compared. The figure includes "
      "the origin's time and the loopback hops, not the proxy's alone.")
    p("- **RSS idle**: VmRSS from /proc one second after start (for nginx: master + worker).")
    p("- **RSS per 1,000 idle conns**: after the load runs, a Python client opens the idle "
      "connections, sends one request on each, reads the answer and holds them open; the VmRSS "
      "growth divided by the connections held, times 1,000. **Kept after they close**: VmRSS "
      "two seconds after the client closed them, minus VmRSS before they were opened "
      "(0 = memory given back).")
    print("\n".join(out))


if __name__ == "__main__":
    main()
