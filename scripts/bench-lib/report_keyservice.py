#!/usr/bin/env python3
"""Turn scripts/bench-keyservice's results.jsonl into the report (markdown table + notes).

results.jsonl lines: {"backend", "run", "op", "ok", "errors", "first_error", "seconds",
"ops_per_s", "p50_ms", "p99_ms", "mean_ms", ...} from examples/keyservice_load.rs with
the back end and run added, or {"backend", "run", "failed": reason}.  Medians are taken
over the runs that completed without errors.
"""
import argparse
import json
import statistics
import sys

OPS = ("fetch", "login")
LABELS = {
    "json": "JSON files (f52c863)",
    "sqlite": "SQLite",
    "pg1": "PostgreSQL, 1 replica",
    "pg2": "PostgreSQL, 2 replicas",
}
# (key, column title suffix)
METRICS = [("ops_per_s", "/s"), ("p50_ms", " p50 ms"), ("p99_ms", " p99 ms")]


def fmt(key, v):
    if v is None:
        return "-"
    if key == "ops_per_s":
        return f"{v:.0f}" if v >= 100 else f"{v:.1f}"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def cpu_table(backends, runs):
    """CPU milliseconds per request by the key service, the database and the clients
    (medians), and the cores busy in all: where the time goes."""
    out = ["CPU ms per request (medians; the clients run on the same machine) and cores "
           "busy during the measurement:", "",
           "| back end | op | server | database | clients | cores busy |",
           "|:--|:--|--:|--:|--:|--:|"]
    for be in backends:
        for op in OPS:
            rs = [r for r in runs.get((be, op), []) if "cpu_ms_per_op" in r]
            if not rs:
                continue
            c = {k: statistics.median(r["cpu_ms_per_op"][k] for r in rs)
                 for k in ("server", "db", "client")}
            busy = statistics.median(r["cpu_busy"] for r in rs)
            db = f"{c['db']:.3f}" if be.startswith("pg") else "-"
            out.append(f"| {LABELS.get(be, be)} | {op} | {c['server']:.3f} | {db} | "
                       f"{c['client']:.3f} | {busy:.2f} |")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--seconds", required=True)
    ap.add_argument("--backends", required=True, help="space-separated, in row order")
    ap.add_argument("--machine", default="")
    ap.add_argument("--versions", default="")
    ap.add_argument("--load", default="")
    ap.add_argument("--out")
    a = ap.parse_args()

    backends = a.backends.split()
    runs = {}  # (backend, op) -> [record]
    failures = {}  # backend -> [reason]
    for line in open(a.results, encoding="utf-8", errors="replace"):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        if "failed" in r:
            failures.setdefault(r["backend"], []).append(f"run {r['run']}: {r['failed']}")
            continue
        if r.get("errors"):
            failures.setdefault(r["backend"], []).append(
                f"run {r['run']} {r['op']}: {r['errors']} error(s), first: {r.get('first_error')}")
            continue
        runs.setdefault((r["backend"], r["op"]), []).append(r)

    med = {}  # (backend, op) -> {key: median}
    for be in backends:
        for op in OPS:
            rs = runs.get((be, op), [])
            med[(be, op)] = {k: (statistics.median(float(r[k]) for r in rs) if rs else None)
                             for k, _ in METRICS}

    header = ["back end"] + [op + t for op in OPS for _, t in METRICS] + ["runs ok"]
    table = []
    for be in backends:
        nok = min(len(runs.get((be, op), [])) for op in OPS)
        table.append([LABELS.get(be, be)]
                     + [fmt(k, med[(be, op)][k]) for op in OPS for k, _ in METRICS]
                     + [f"{nok}/{a.runs}"])

    def ratio(num, den, op):
        n, d = med.get((num, op), {}).get("ops_per_s"), med.get((den, op), {}).get("ops_per_s")
        return n / d if n and d else None

    checks = []
    r = ratio("sqlite", "json", "fetch")
    if r is not None:
        checks.append(f"fetch throughput SQLite / JSON files: {r:.3f} (must be >= 1: "
                      f"{'yes' if r >= 1.0 else 'NO'})")
    r = ratio("sqlite", "json", "login")
    if r is not None:
        checks.append(f"login throughput SQLite / JSON files: {r:.3f}")
    for op in OPS:
        r = ratio("pg2", "pg1", op)
        if r is not None:
            checks.append(f"{op} throughput 2 replicas / 1 replica: {r:.3f} (must be >= 0.9: "
                          f"{'yes' if r >= 0.9 else 'NO'})")

    widths = [max(len(str(row[i])) for row in [header] + table) for i in range(len(header))]

    def mdrow(row):
        cells = [str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                 for i, c in enumerate(row)]
        return "| " + " | ".join(cells) + " |"

    lines = [f"Medians of {a.runs} run(s) per back end, runs interleaved; {a.clients} "
             f"concurrent clients, {a.seconds} s measured per operation; latencies in ms.", ""]
    lines.append(mdrow(header))
    lines.append("|" + "|".join(":" + "-" * (w + 1) if i == 0 else "-" * (w + 1) + ":"
                                for i, w in enumerate(widths)) + "|")
    lines.extend(mdrow(row) for row in table)
    lines.append("")
    lines.extend(f"- {c}" for c in checks)
    for be in backends:
        for f in failures.get(be, []):
            lines.append(f"- {LABELS.get(be, be)}: excluded {f}")
    if a.machine:
        lines.append(f"- machine: {a.machine}")
    if a.load:
        lines.append(f"- {a.load}")
    if a.versions:
        lines.append(f"- versions: {a.versions}")
    lines.append("")
    lines.extend(cpu_table(backends, runs))
    lines.append("")
    lines.append("Per-run values (ops/s, p50 ms, p99 ms):")
    lines.append("")
    for be in backends:
        for op in OPS:
            rs = sorted(runs.get((be, op), []), key=lambda r: r["run"])
            vals = "; ".join(f"{r['ops_per_s']:.1f}, {r['p50_ms']:.2f}, {r['p99_ms']:.2f}"
                             for r in rs)
            lines.append(f"- {LABELS.get(be, be)} {op}: {vals or '-'}")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
