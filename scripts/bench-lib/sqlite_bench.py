#!/usr/bin/env python3
"""The SQLite column of scripts/bench: a database on the filesystem under test, in WAL mode
with synchronous=FULL (every commit is fsynced, as a careful application asks), then
TRANSACTIONS small transactions (one INSERT each) and one read query over the result.

Prints one line: "<transactions per second> <query seconds>". Checks what it reads back,
so a filesystem that loses a commit cannot post a figure (exit 1).
"""

import argparse
import os
import sqlite3
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("dir", help="directory on the filesystem under test")
    ap.add_argument("--transactions", type=int, default=10_000)
    args = ap.parse_args()

    path = os.path.join(args.dir, "bench.sqlite")
    db = sqlite3.connect(path, isolation_level=None)
    mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        print(f"sqlite: WAL mode refused (journal_mode={mode})", file=sys.stderr)
        return 1
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)")

    start = time.perf_counter()
    for i in range(args.transactions):
        db.execute("BEGIN")
        db.execute("INSERT INTO t (k, v) VALUES (?, ?)", (i * 7919 % 1000, f"row {i:08d}"))
        db.execute("COMMIT")
    tps = args.transactions / (time.perf_counter() - start)

    start = time.perf_counter()
    rows = db.execute(
        "SELECT k, count(*), max(v) FROM t GROUP BY k ORDER BY k"
    ).fetchall()
    query_s = time.perf_counter() - start
    db.close()

    want_groups = min(1000, args.transactions)
    total = sum(r[1] for r in rows)
    if len(rows) != want_groups or total != args.transactions:
        print(
            f"sqlite: read back {total} rows in {len(rows)} groups, "
            f"wrote {args.transactions} in {want_groups}",
            file=sys.stderr,
        )
        return 1
    print(f"{tps:.1f} {query_s:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
