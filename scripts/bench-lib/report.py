#!/usr/bin/env python3
"""Turn scripts/bench's results.tsv into the report (markdown table + notes).

results.tsv lines: fs <TAB> run <TAB> key <TAB> value, where key is one of the
metric keys below, "ok" (the run completed) or "failed" (value = reason).
Medians are taken over the completed runs only.
"""
import argparse
import statistics
import sys

# (key, column title, higher is better), one table per group
GROUPS = [
    [
        ("write_mbs", "write MB/s", True),
        ("read_mbs", "read MB/s (drop_caches)", True),
        ("cold_mbs", "read MB/s (cold)", True),
        ("untar_s", "untar s", False),
        ("untar_fresh_s", "untar s (fresh fs)", False),
        ("md5_s", "md5 s", False),
        ("ls_s", "ls -lR s", False),
        ("rm_s", "rm s", False),
    ],
    [
        ("fio_randwrite_1", "fio randwrite IOPS x1", True),
        ("fio_randwrite_4", "fio randwrite IOPS x4", True),
        ("fio_randread_1", "fio randread IOPS x1", True),
        ("fio_randread_4", "fio randread IOPS x4", True),
        ("sqlite_tps", "SQLite tx/s", True),
        ("sqlite_query_s", "SQLite query s", False),
    ],
]
METRICS = [m for g in GROUPS for m in g]
PEERS = ("gocryptfs", "cryfs", "securefs")


def fmt(key, v):
    if v is None:
        return "-"
    if key.startswith("fio_") or key == "sqlite_tps":
        return f"{v:.0f}"
    if key.endswith("_mbs"):
        return f"{v:.0f}" if v >= 100 else f"{v:.1f}"
    return f"{v:.2f}" if v < 100 else f"{v:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--size-mib", type=int, required=True)
    ap.add_argument("--tree", default="")
    ap.add_argument("--versions", default="")
    ap.add_argument("--fs", required=True, help="space-separated, in row order")
    ap.add_argument("--out")
    a = ap.parse_args()

    fss = a.fs.split()
    rows = {}  # fs -> {run -> {key: value}}
    for line in open(a.results, encoding="utf-8", errors="replace"):
        parts = line.rstrip("\n").split("\t", 3)
        if len(parts) != 4:
            continue
        fs, run, key, val = parts
        rows.setdefault(fs, {}).setdefault(run, {})[key] = val

    med = {}       # fs -> {key: median}
    status = {}    # fs -> (ok runs, [failure reasons])
    for fs in fss:
        runs = rows.get(fs, {})
        ok = [r for r in runs.values() if "ok" in r]
        fails = [r["failed"] for r in runs.values() if "failed" in r]
        status[fs] = (len(ok), fails)
        med[fs] = {}
        for key, _, _ in METRICS:
            vals = [float(r[key]) for r in ok if key in r]
            med[fs][key] = statistics.median(vals) if vals else None

    def build(metrics):
        header = ["filesystem"] + [t for _, t, _ in metrics] + ["runs ok"]
        table = []
        for fs in fss:
            nok, fails = status[fs]
            if nok == 0:
                reason = fails[0] if fails else "no result"
                table.append([fs, f"failed: {reason}"] + [""] * (len(metrics) - 1)
                             + [f"0/{a.runs}"])
            else:
                table.append([fs] + [fmt(k, med[fs][k]) for k, _, _ in metrics]
                             + [f"{nok}/{a.runs}"])

        if "cirrus" in fss:
            peers = [p for p in PEERS if p in fss and status[p][0] > 0]
            ratio = ["cirrus / best peer"]
            if status["cirrus"][0] == 0:
                ratio += ["n/a (cirrus failed)"] + [""] * (len(metrics) - 1)
            elif not peers:
                ratio += ["n/a (no peer completed)"] + [""] * (len(metrics) - 1)
            else:
                for key, _, higher in metrics:
                    c = med["cirrus"][key]
                    vals = [(med[p][key], p) for p in peers if med[p][key] is not None]
                    if c is None or not vals:
                        ratio.append("-")
                        continue
                    if higher:
                        best, who = max(vals)
                        r = c / best if best > 0 else float("inf")
                    else:
                        best, who = min(vals)
                        r = best / c if c > 0 else float("inf")
                    ratio.append(f"{r:.2f} ({who})")
            ratio.append("")
            table.append(ratio)
            notes_add("Ratio row: throughput columns are cirrus / best peer, time "
                         "columns are best peer / cirrus, so > 1 always means Cirrus "
                         "is better; the best peer of each column is named in "
                         "parentheses. Peers are gocryptfs, cryfs and securefs (the "
                         "ceiling and the plain directory are not peers).")
        if "cirrus" in fss and "ceiling" in fss:
            row = ["cirrus / ceiling"]
            if status["cirrus"][0] == 0 or status["ceiling"][0] == 0:
                row += ["n/a (cirrus or the ceiling failed)"] + [""] * (len(metrics) - 1)
            else:
                for key, _, higher in metrics:
                    c, top = med["cirrus"][key], med["ceiling"][key]
                    if c is None or top is None or c <= 0 or top <= 0:
                        row.append("-")
                    else:
                        row.append(f"{(c / top if higher else top / c):.2f}")
            row.append("")
            table.append(row)
            notes_add("Ceiling row: a FUSE passthrough with no crypto "
                         "(examples/passthrough.rs) mounted as Cirrus mounts (same fuser, "
                         "threads, TTL, max_write, options, capabilities, read-ahead). "
                         "cirrus / ceiling is the share of what FUSE allows that Cirrus "
                         "reaches (same convention: 1 = as fast as the ceiling).")

        return header, table

    notes = []
    seen_notes = set()

    def notes_add(n):
        if n not in seen_notes:
            seen_notes.add(n)
            notes.append(n)

    tables = []
    for g in GROUPS:
        if any(med[fs][k] is not None for fs in fss for k, _, _ in g) or g is GROUPS[0]:
            tables.append(build(g))

    for fs in fss:
        steps = sorted({r["step_failed"] for r in rows.get(fs, {}).values()
                        if "step_failed" in r})
        for why in steps:
            runs = [run for run, r in rows.get(fs, {}).items() if r.get("step_failed") == why]
            notes.append(f"{fs}: a step failed in run(s) {', '.join(sorted(runs))} "
                         f"(its columns are left out of those runs): {why}")
    for fs in fss:
        nok, fails = status[fs]
        if fails and nok > 0:
            notes.append(f"{fs}: {len(fails)} run(s) failed and are excluded: "
                         + "; ".join(sorted(set(fails))))

    def render(header, table):
        # a failure message spans the row: keep it out of the column widths
        def width_rows(i):
            for r in [header] + table:
                if i == 1 and (r[1].startswith("failed") or r[1].startswith("n/a")):
                    continue
                yield len(str(r[i]))
        widths = [max(width_rows(i)) for i in range(len(header))]

        def mdrow(r):
            cells = []
            for i, c in enumerate(r):
                c = str(c).replace("|", "\\|")
                cells.append(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]))
            return "| " + " | ".join(cells) + " |"

        out = [mdrow(header), "|" + "|".join(
            "-" * (w + 1) + ":" if i else ":" + "-" * (w + 1)
            for i, w in enumerate(widths)) + "|"]
        return out + [mdrow(r) for r in table]

    lines = []
    lines.append(f"Medians of {a.runs} run(s) per filesystem, runs interleaved; "
                 f"dd file {a.size_mib} MiB; MB = 10^6 bytes; times in seconds.")
    if a.tree:
        lines.append(f"Tree: {a.tree}.")
    for header, table in tables:
        lines.append("")
        lines.extend(render(header, table))
    lines.append("")
    for n in notes:
        lines.append(n)
        lines.append("")
    if a.versions:
        lines.append("Versions:")
        lines.append("")
        lines.append(a.versions)
    text = "\n".join(lines).rstrip() + "\n"

    # every run's values, for the --out file (to judge the noise)
    raw = ["", "Per-run values (run: " + ", ".join(t for _, t, _ in METRICS) + "):", ""]
    for fs in fss:
        for run in sorted(rows.get(fs, {}), key=int):
            r = rows[fs][run]
            if "failed" in r:
                raw.append(f"- {fs} run {run}: failed: {r['failed']}")
            else:
                raw.append(f"- {fs} run {run}: " + ", ".join(
                    fmt(k, float(r[k])) if k in r else "-" for k, _, _ in METRICS))

    sys.stdout.write(text)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write("# Cirrus benchmark results\n\n" + text + "\n".join(raw) + "\n")


if __name__ == "__main__":
    main()
