#!/usr/bin/env python3
"""Turns bench/bus/run.sh's per-round measurements (TSV: system round metric value) into the
markdown report: medians per system, Ferry's ratio to its peer at matching durability, the
issue's targets, every round, and how it was measured."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from rounds import Rounds, fmt  # noqa: E402

NAMES = {
    "ferry-interval": "Ferry `interval`",
    "nats": "NATS JetStream",
    "ferry-batch": "Ferry `batch`",
    "redis": "Redis streams `appendfsync always`",
    "ferry-nats": "Ferry on NATS (`backend: nats`)",
}
PAIRS = [("ferry-interval", "nats"), ("ferry-batch", "redis"), ("ferry-nats", "nats")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("--systems", required=True)
    ap.add_argument("--publishers", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--versions", required=True)
    ap.add_argument("--params", required=True)
    args = ap.parse_args()

    rounds_read = Rounds(args.tsv)
    data = rounds_read.data  # name -> metric -> round -> value
    med = rounds_read.median

    def ratio(a, b):
        return a / b if a is not None and b else None

    systems = args.systems.split()
    pubs = args.publishers.split()
    out = []
    p = out.append
    p("# Message bus: Ferry vs NATS JetStream and Redis streams")
    p("")
    p(f"Machine: {args.machine}. Versions: {args.versions}.")
    p("")
    p(f"Command: `{args.command}`")
    p("")
    p(f"Parameters: {args.params}.")
    p("")
    p("Medians over the rounds (throughput: acknowledged publishes per second; latency: "
      "publish-to-delivery, ms):")
    p("")
    head = "| system |" + "".join(f" msg/s, {n} publisher{'s' if n != '1' else ''} |" for n in pubs)
    head += " ack p99 ms, " + pubs[-1] + " publishers | latency p50 | latency p99 | rate of the latency run (msg/s) | not delivered | RSS at end (MiB) |"
    p(head)
    p("|---|" + "---:|" * (len(pubs) + 6))
    for s in systems:
        cells = [fmt(med(s, f"pub{n}_rps")) for n in pubs]
        cells.append(fmt(med(s, f"pub{pubs[-1]}_ack_p99_ms"), 2))
        cells += [fmt(med(s, "lat_p50_ms"), 3), fmt(med(s, "lat_p99_ms"), 3),
                  fmt(med(s, "lat_rate")), fmt(med(s, "lat_missing"))]
        rss = med(s, "rss_kib")
        cells.append(fmt(rss / 1024 if rss is not None else None, 1))
        p(f"| {NAMES.get(s, s)} | " + " | ".join(cells) + " |")
    p("")

    pairs = [(f, peer) for f, peer in PAIRS if f in systems and peer in systems]
    if pairs:
        p("Ferry relative to its peer at matching durability (medians; throughput: above 1 is "
          "better for Ferry; latency: below 1 is better for Ferry):")
        p("")
        p("| pair |" + "".join(f" msg/s, {n} pub. |" for n in pubs) + " latency p50 | latency p99 |")
        p("|---|" + "---:|" * (len(pubs) + 2))
        for f, peer in pairs:
            cells = [ratio(med(f, f"pub{n}_rps"), med(peer, f"pub{n}_rps")) for n in pubs]
            cells += [ratio(med(f, "lat_p50_ms"), med(peer, "lat_p50_ms")),
                      ratio(med(f, "lat_p99_ms"), med(peer, "lat_p99_ms"))]
            p(f"| {NAMES[f]} / {NAMES[peer]} | " +
              " | ".join(f"{c:.2f}×" if c is not None else "–" for c in cells) + " |")
        p("")

        # The targets of issue 3 ("What done looks like").
        many = pubs[-1]
        rows = []
        if ("ferry-interval", "nats") in pairs:
            r = ratio(med("ferry-interval", f"pub{many}_rps"), med("nats", f"pub{many}_rps"))
            rows.append(("Ferry `interval` ≥ 1.5× NATS publish throughput", r, r is not None and r >= 1.5))
            r = ratio(med("ferry-interval", "lat_p99_ms"), med("nats", "lat_p99_ms"))
            rows.append(("Ferry `interval` p99 publish-to-delivery ≤ NATS's", r, r is not None and r <= 1.0))
        if ("ferry-batch", "redis") in pairs:
            r = ratio(med("ferry-batch", f"pub{many}_rps"), med("redis", f"pub{many}_rps"))
            rows.append(("Ferry `batch` ≥ Redis `appendfsync always` publish throughput", r, r is not None and r >= 1.0))
        if rows:
            p(f"Targets (issue 3), with {many} publishers:")
            p("")
            p("| target | measured | met |")
            p("|---|---:|---|")
        for name, r, ok in rows:
            p(f"| {name} | {fmt(r, 2)}× | {'yes' if ok else '**no**'} |")
        if rows:
            p("")

    ferry = [s for s in systems if s.startswith("ferry") and s != "ferry-nats"]  # own log only
    if ferry:
        p("Ferry's message log during the throughput loads (from `GET /v1/queues/pub`: "
          "`fsync_batches`, `fsync_records`; medians):")
        p("")
        p("| system |" + "".join(f" fsyncs/s, {n} pub. | records per fsync, {n} pub. |" for n in pubs))
        p("|---|" + "---:|" * (2 * len(pubs)))
        for s in ferry:
            cells = []
            for n in pubs:
                cells += [fmt(med(s, f"pub{n}_fsyncs_per_s"), 1),
                          fmt(med(s, f"pub{n}_records_per_fsync"), 1)]
            p(f"| {NAMES[s]} | " + " | ".join(cells) + " |")
        p("")

    p("Every round:")
    p("")
    metrics = [f"pub{n}_rps" for n in pubs] + [f"pub{n}_ack_p50_ms" for n in pubs] + \
        [f"pub{n}_ack_p99_ms" for n in pubs] + ["lat_p50_ms", "lat_p99_ms", "lat_rate", "lat_missing"]
    rounds = sorted({r for s in systems for m in data[s].values() for r in m})
    p("| system | metric | " + " | ".join(f"round {r}" for r in rounds) + " |")
    p("|---|---|" + "---:|" * len(rounds))
    for s in systems:
        for m in metrics:
            vals = [data[s][m].get(r) for r in rounds]
            digits = 0 if m.endswith("_rps") or m in ("lat_rate", "lat_missing") else 3
            p(f"| {NAMES.get(s, s)} | {m} | " + " | ".join(fmt(v, digits) for v in vals) + " |")
    errors = [(s, n) for s in systems for n in pubs
              if any(v for v in data[s][f"pub{n}_errors"].values())]
    for s, n in errors:
        p("")
        p(f"**{NAMES.get(s, s)} refused publishes with {n} publishers** (errors in rounds: "
          f"{dict(data[s][f'pub{n}_errors'])}).")
    p("")
    p("Configs: `bench/bus/ferry-interval.yaml`, `ferry-batch.yaml`, `ferry-nats.yaml`, `nats.conf`, `redis.conf`; "
      "load tool: `bench/bus/bus_load.cpp` (see `bench/bus/README.md`).")
    print("\n".join(out))


if __name__ == "__main__":
    main()
