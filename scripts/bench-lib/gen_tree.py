#!/usr/bin/env python3
"""Write the deterministic test tree of scripts/bench-remote.

A few large files plus many small ones (1-64 KiB) in nested directories, with
pseudo-random (incompressible) content from a seeded generator: the same seed
and sizes give byte-identical trees on every machine, so runs and tools compare.

Usage: gen_tree.py DIR --large N --large-mib M --small-mib S [--seed K]
Prints "files bytes dirs" of what it wrote.
"""
import argparse
import os
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--large", type=int, required=True, help="number of large files")
    ap.add_argument("--large-mib", type=int, required=True, help="size of each, MiB")
    ap.add_argument("--small-mib", type=int, required=True,
                    help="total size of the small files, MiB")
    ap.add_argument("--seed", type=int, default=20260501)
    a = ap.parse_args()

    rng = random.Random(a.seed)
    os.makedirs(a.dir, exist_ok=False)
    files = 0
    total = 0
    dirs = set()

    def write(path, size):
        nonlocal files, total
        with open(path, "wb") as f:
            left = size
            while left:
                n = min(left, 1 << 20)
                f.write(rng.randbytes(n))
                left -= n
        files += 1
        total += size

    big = os.path.join(a.dir, "large")
    os.makedirs(big)
    dirs.add(big)
    for i in range(a.large):
        write(os.path.join(big, f"blob-{i:02d}.bin"), a.large_mib << 20)

    # Small files: sizes uniform in 1..64 KiB until the budget is spent; about 50
    # files per directory, directories nested three deep (a source tree's shape).
    budget = a.small_mib << 20
    spent = 0
    i = 0
    while spent < budget:
        size = min(rng.randint(1024, 64 * 1024), budget - spent)
        d = i // 50
        path = os.path.join(a.dir, "small", f"d{d // 100:02d}", f"d{(d // 10) % 10}",
                            f"d{d % 10}")
        if path not in dirs:
            os.makedirs(path, exist_ok=True)
            dirs.add(path)
        write(os.path.join(path, f"f{i:05d}.dat"), size)
        spent += size
        i += 1
    print(files, total, len(dirs))


if __name__ == "__main__":
    main()
