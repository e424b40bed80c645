#!/bin/sh
# paper/results.sh — `make paper-results`: the report of the paper sweeps' results committed in
# paper/results/ (paper/results/README.md), without running anything.
#
#   sh paper/results.sh OUT
#
# paper/results/SWEEP/*.tar.xz are `tracc sweep pack`s of SWEEP, one per session that ran some of
# its jobs. Each SWEEP's archives are unpacked in name order (dates: a later one's files win)
# into OUT/sweeps/SWEEP, then one `tracc report` over those directories writes OUT/report.md,
# report.html, report.json. Exit 1 if an archive holds a model or a lock (a pack never does), or
# if anything fails.
set -u
OUT=${1:-}
TRACC=${TRACC:-build/tracc}
HERE=$(dirname "$0")
[ -n "$OUT" ] || { echo "usage: sh paper/results.sh OUT" >&2; exit 2; }
[ -x "$TRACC" ] || { echo "paper/results.sh: no tracc binary at $TRACC (run make)" >&2; exit 1; }
. "$HERE/unpack.sh"
DIRS=
for sd in "$HERE"/results/*/; do
    name=$(basename "$sd")
    d=$OUT/sweeps/$name
    rm -rf "$d" && mkdir -p "$d" || exit 1
    unpack_results "$name" "$d"
    case $? in 0) DIRS="$DIRS $d" ;; 1) rmdir "$d" ;; *) exit 1 ;; esac
done
[ -n "$DIRS" ] || { echo "paper/results.sh: no archives in $HERE/results/*/" >&2; exit 1; }
# shellcheck disable=SC2086
"$TRACC" report $DIRS -o "$OUT" >/dev/null || exit 1
for d in $DIRS; do "$TRACC" sweep status "$d" | sed 's/^/paper\/results.sh: /' >&2; done
sh "$HERE/summary.sh" "$OUT/report.md" | sed 's/^/paper\/results.sh: /' >&2
echo "paper/results.sh: report in $OUT/report.md, $OUT/report.html, $OUT/report.json" >&2
