#!/bin/sh
# `make bench`: runs every bench binary given as an argument, one after the other on this
# machine, so the figures of one run can be compared as ratios. Results go to stdout;
# copy the figures into docs/benchmarks.md with the date and the machine.
echo "# tracc bench — $(date -u +%Y-%m-%dT%H:%MZ) — $(uname -m), $(nproc) cores"
for b in "$@"; do
    echo "== $b"
    "$b" || exit 1
done
