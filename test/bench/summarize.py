#!/usr/bin/env python3
"""Turns the raw results of scripts/bench (one JSON object per run) into the
per-scenario table: median of each broker and the Flotilla/RabbitMQ ratio.
Prints a Markdown table and writes a JSON summary."""

import argparse
import json
import statistics
import sys

TITLES = {
    "1": "transient 100 B, 1 pub / 1 cons, auto-ack",
    "2": "transient 100 B, manual ack, prefetch 100",
    "3": "persistent 100 B, durable queue, confirms, manual ack",
    "4": "fan-out to 4 queues (4 consumers)",
    "5a": "latency at 10,000 msg/s, transient",
    "5b": "latency at 2,000 msg/s, persistent + confirms",
    "6": "100 queues, 100 pub + 100 cons",
    "7": "1 MiB messages",
    "8a": "memory with N queued 100 B messages",
    "8b": "memory with N idle connections",
    "9": "restart with N persistent messages queued",
    "10a": "federation A -> B, transient 100 B",
    "10b": "federation A -> B, persistent 100 B, confirms on A, manual ack on B",
}

NOTES = {
    "3": "both brokers confirm a persistent message only after the fsync "
         "that covers it (Flotilla: one fdatasync per group of messages).",
    "9": "from starting the process until the queue reports every "
         "message; both brokers were stopped cleanly after the fill.",
}
NOTES["10a"] = NOTES["10b"] = (
    "published on broker A, consumed on broker B (a second broker of the "
    "same kind); CPU and RSS are of A and B together (rows A, B: each).")


def throughput_metrics(r):
    consumed = r.get("consumed", 0) or 0
    cpu = r.get("broker", {}).get("cpu_s", 0)
    b = r.get("consume_broker")
    if b is None:
        return {
            "publish msg/s": (r.get("publish_rate"), True),
            "consume msg/s": (r.get("consume_rate"), True),
            "consume MB/s": (r.get("consume_mbps"), True),
            "broker CPU us/msg": (cpu / consumed * 1e6 if consumed else None,
                                  False),
            "broker peak RSS MiB": (r["broker"]["rss_peak_kb"] / 1024, False),
        }

    # Two brokers (federation): publish on A, consume on B.
    def per_msg(c):
        return c / consumed * 1e6 if consumed else None
    cpu_b = b.get("cpu_s", 0)
    return {
        "publish msg/s": (r.get("publish_rate"), True),
        "consume msg/s": (r.get("consume_rate"), True),
        "broker CPU us/msg (A+B)": (per_msg(cpu + cpu_b), False),
        "broker CPU us/msg A": (per_msg(cpu), False),
        "broker CPU us/msg B": (per_msg(cpu_b), False),
        "broker peak RSS MiB (A+B)": (
            (r["broker"]["rss_peak_kb"] + b["rss_peak_kb"]) / 1024, False),
    }


def latency_metrics(r):
    consumed = r.get("consumed", 0) or 0
    cpu = r.get("broker", {}).get("cpu_s", 0)
    return {
        "achieved msg/s": (r.get("consume_rate"), None),
        "latency p50 us": (r["latency_us"]["p50"], False),
        "latency p99 us": (r["latency_us"]["p99"], False),
        "latency p99.9 us": (r["latency_us"]["p999"], False),
        "broker CPU us/msg": (cpu / consumed * 1e6 if consumed else None,
                              False),
    }


def queued_metrics(r):
    b = r["broker"]
    return {
        "messages queued": (r.get("queued"), None),
        "RSS with messages MiB": (b["rss_end_kb"] / 1024, False),
        "RSS growth MiB": ((b["rss_end_kb"] - b["rss_start_kb"]) / 1024, False),
        "publish msg/s (confirms)": (r.get("publish_rate"), True),
    }


def idle_metrics(r):
    return {
        "connections opened": (r.get("opened"), None),
        "RSS with connections MiB": (r["rss_end_kb"] / 1024, False),
        "KiB per connection": (r.get("kb_per_connection"), False),
        "open time s": (r.get("open_s"), False),
    }


def restart_metrics(r):
    return {"restart s": (r.get("ready_s"), False),
            "messages after restart": (r.get("message_count"), None)}


def metrics_of(scenario, r):
    if scenario in ("5a", "5b"):
        return latency_metrics(r)
    if scenario == "8a":
        return queued_metrics(r)
    if scenario == "8b":
        return idle_metrics(r)
    if scenario == "9":
        return restart_metrics(r)
    m = throughput_metrics(r)
    if scenario != "7":
        m.pop("consume MB/s", None)
    return m


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def scenario_key(s):
    digits = "".join(ch for ch in s if ch.isdigit())
    return (int(digits or 0), s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--machine", default="")
    ap.add_argument("--command", default="")
    ap.add_argument("--note", action="append", default=[],
                    help="ID=TEXT: a note for scenario ID (added to the "
                    "built-in one)")
    a = ap.parse_args()
    for n in a.note:
        sid, _, text = n.partition("=")
        NOTES[sid] = (NOTES[sid] + " " + text) if sid in NOTES else text

    runs = [json.loads(line) for line in open(a.results) if line.strip()]
    by = {}
    for r in runs:
        by.setdefault(r["scenario"], {}).setdefault(r["target"], []).append(r)

    summary = {"machine": a.machine, "command": a.command, "scenarios": []}
    rows = []
    any_failed = False
    for s in sorted(by, key=scenario_key):
        entry = {"id": s, "title": TITLES.get(s, s), "note": NOTES.get(s),
                 "metrics": [], "failed_runs": {}}
        per_broker = {}
        for broker in ("flotilla", "rabbit"):
            rs = by[s].get(broker, [])
            good = [r for r in rs if r.get("ok") and "na" not in r]
            bad = [r for r in rs if not r.get("ok")]
            entry["failed_runs"][broker] = len(bad)
            if bad:
                any_failed = True
            per_broker[broker] = (good, bad, any("na" in r for r in rs))
        names = []
        for broker in ("flotilla", "rabbit"):
            for r in per_broker[broker][0]:
                for k in metrics_of(s, r):
                    if k not in names:
                        names.append(k)
        for k in names:
            m = {"name": k}
            higher = True
            for broker in ("flotilla", "rabbit"):
                good, bad, na = per_broker[broker]
                vals = []
                for r in good:
                    v, higher = metrics_of(s, r).get(k, (None, True))
                    if v is not None:
                        vals.append(v)
                m[broker + "_runs"] = vals
                if vals:
                    m[broker] = statistics.median(vals)
                elif na:
                    m[broker] = "n/a"
                elif bad:
                    m[broker] = "FAILED"
                else:
                    m[broker] = None
            m["higher_is_better"] = higher
            f, rb = m["flotilla"], m["rabbit"]
            ratio = None
            better = ""
            if isinstance(f, (int, float)) and isinstance(rb, (int, float)):
                if rb:
                    ratio = f / rb
                # higher None: a checked quantity (a target rate, a count),
                # not a score.
                if f != rb and higher is not None:
                    better = ("Flotilla" if (f > rb) == higher else "RabbitMQ")
            m["ratio"] = ratio
            m["better"] = better
            entry["metrics"].append(m)
            rows.append((s, entry["title"], k, fmt(f), fmt(rb),
                         "" if ratio is None else f"{ratio:.2f}", better))
        if not names:
            for broker in ("flotilla", "rabbit"):
                if per_broker[broker][1]:
                    rows.append((s, entry["title"], "(all runs failed)",
                                 "FAILED" if broker == "flotilla" else "",
                                 "FAILED" if broker == "rabbit" else "", "",
                                 ""))
        summary["scenarios"].append(entry)

    with open(a.out, "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

    print()
    if a.machine:
        print(f"Machine: {a.machine}")
    if a.command:
        print(f"Command: {a.command}")
    print()
    print("| # | scenario | metric | Flotilla | RabbitMQ | F/R | better |")
    print("|---|---|---|---:|---:|---:|---|")
    last = None
    for s, title, k, f, rb, ratio, better in rows:
        shown_title = title if s != last else ""
        shown_s = s if s != last else ""
        last = s
        print(f"| {shown_s} | {shown_title} | {k} | {f} | {rb} | {ratio} "
              f"| {better} |")
    notes = [(s, NOTES[s]) for s in sorted(by, key=scenario_key) if s in NOTES]
    if notes:
        print()
        for s, n in notes:
            print(f"Note {s}: {n}")
    for entry in summary["scenarios"]:
        for broker, n in entry["failed_runs"].items():
            if n:
                print(f"FAILED: scenario {entry['id']} {broker}: {n} run(s)")
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
