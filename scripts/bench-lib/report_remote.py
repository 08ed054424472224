#!/usr/bin/env python3
"""Turn scripts/bench-remote's results.tsv into the report (markdown table + notes).

results.tsv lines: tool <TAB> run <TAB> key <TAB> value. Keys: up_s, down_s, mount_s,
objects, stored_bytes, rss_kib, big_up_s, big_bytes, "ok" (the run completed) and
"failed" (value = reason). Medians are over the completed runs only.
"""
import argparse
import statistics

TOOLS = [
    ("cirrus", "cirrus (S3 store)"),
    ("rclone-crypt", "rclone crypt"),
    ("rclone-plain", "rclone (plain s3)"),
]


def mib(b):
    return b / 1048576


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--tree-bytes", type=int, required=True)
    ap.add_argument("--tree", default="")
    ap.add_argument("--memory-cache", default="")
    ap.add_argument("--versions", default="")
    ap.add_argument("--out")
    a = ap.parse_args()

    rows = {}  # tool -> run -> {key: value}
    for line in open(a.results, encoding="utf-8", errors="replace"):
        parts = line.rstrip("\n").split("\t", 3)
        if len(parts) == 4:
            tool, run, key, val = parts
            rows.setdefault(tool, {}).setdefault(run, {})[key] = val

    def med(tool, key):
        ok = [r for r in rows.get(tool, {}).values() if "ok" in r and key in r]
        vals = [float(r[key]) for r in ok]
        return statistics.median(vals) if vals else None

    def status(tool):
        runs = rows.get(tool, {}).values()
        ok = sum(1 for r in runs if "ok" in r)
        fails = [r["failed"] for r in runs if "failed" in r]
        return ok, fails

    plain = a.tree_bytes
    out = []
    out.append("| tool | upload s | upload MiB/s | cold read s | cold read MiB/s "
               "| objects | stored MiB | overhead | daemon peak RSS | runs ok |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for tool, title in TOOLS:
        ok, fails = status(tool)
        if ok == 0:
            why = fails[0] if fails else "no result"
            out.append(f"| {title} | failed: {why} |  |  |  |  |  |  |  | 0/{a.runs} |")
            continue
        up, down = med(tool, "up_s"), med(tool, "down_s")
        objs, stored = med(tool, "objects"), med(tool, "stored_bytes")
        rss = med(tool, "rss_kib")
        cells = [
            title,
            f"{up:.1f}" if up else "-",
            f"{mib(plain) / up:.1f}" if up else "-",
            f"{down:.1f}" if down else "-",
            f"{mib(plain) / down:.1f}" if down else "-",
            f"{objs:.0f}" if objs is not None else "-",
            f"{mib(stored):.1f}" if stored is not None else "-",
            f"{(stored / plain - 1) * 100:+.2f} %" if stored is not None else "-",
            f"{rss / 1024:.0f} MiB" if rss else "-",
            f"{ok}/{a.runs}",
        ]
        out.append("| " + " | ".join(cells) + " |")

    notes = []
    cu, cd = med("cirrus", "up_s"), med("cirrus", "down_s")
    ru, rd = med("rclone-crypt", "up_s"), med("rclone-crypt", "down_s")
    if cu and ru:
        notes.append(f"- upload, cirrus / rclone crypt: {cu / ru:.2f} x the time "
                     f"({'faster' if cu < ru else 'slower'})")
    if cd and rd:
        notes.append(f"- cold read, cirrus / rclone crypt: {cd / rd:.2f} x the time "
                     f"({'faster' if cd < rd else 'slower'})")
    m = med("cirrus", "mount_s")
    if m is not None:
        notes.append(f"- cirrus cold read = mount of the second device ({m:.1f} s) + "
                     "`tar cf - . | cat >/dev/null`; rclone's = `rclone copy` into an "
                     "empty directory on the tmpfs")
    big = rows.get("cirrus-large", {}).get("1", {})
    if "ok" in big:
        b, s, r = float(big["big_bytes"]), float(big["big_up_s"]), float(big["rss_kib"])
        notes.append(f"- one {b / 2**30:.0f} GiB file written to cirrus and synced: "
                     f"{s:.1f} s ({mib(b) / s:.1f} MiB/s); daemon peak RSS "
                     f"{r / 1024:.0f} MiB with --memory-cache {a.memory_cache}")
    elif "failed" in big:
        notes.append(f"- large-file memory check failed: {big['failed']}")
    for tool, _ in TOOLS:
        per_run = []
        for key, what in (("up_s", "upload"), ("down_s", "cold read")):
            vals = [r[key] for _, r in sorted(rows.get(tool, {}).items()) if key in r]
            if len(vals) > 1:
                per_run.append(f"{what} " + ", ".join(f"{float(v):.1f}" for v in vals) + " s")
        if per_run:
            notes.append(f"- {tool}, every run: " + "; ".join(per_run))
    for tool, _ in TOOLS:
        for f in status(tool)[1]:
            notes.append(f"- {tool}: a run failed: {f}")

    text = []
    text.append(f"Tree: {a.tree}; medians of {a.runs} run(s).")
    text.append("")
    text.extend(out)
    text.append("")
    text.extend(notes)
    if a.versions:
        text.append("")
        text.append(a.versions)
    report = "\n".join(text) + "\n"
    print(report, end="")
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(report)


if __name__ == "__main__":
    main()
