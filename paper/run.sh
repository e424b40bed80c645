#!/bin/sh
# paper/run.sh — `make paper` and `make paper-quick`: plan the paper's sweeps (paper/*.json or
# paper/quick/*.json) under OUT, run every job here, then one `tracc report` over all of them.
#
#   sh paper/run.sh full|quick OUT [JOBS]
#   PAPER_SWEEPS="jain2023-max ..." sh paper/run.sh full OUT     (only these sweeps, by file name)
#   PAPER_FROM_RESULTS=1 sh paper/run.sh full OUT   (the jobs done in paper/results are not run again)
#
# OUT/<sweep name>/ is each sweep's directory (tracc sweep plan; planning into it again does
# nothing, so an interrupted run continues where it stopped), OUT/report.md, OUT/report.html,
# OUT/report.json and the report's SVGs beside them. JOBS (default 2) jobs run at a time, one
# core each. Exit 1 if a sweep had failed jobs (the report is still written and lists them).
set -u
MODE=${1:-}
OUT=${2:-}
JOBS=${3:-2}
TRACC=${TRACC:-build/tracc}
HERE=$(dirname "$0")
case $MODE in
    full) SWEEPS="$HERE/jain2023-counter.json $HERE/jain2023-counter-balanced.json $HERE/jain2023-counter-fused.json $HERE/jain2023-max.json $HERE/jain2023-max-noise.json" ;;
    quick) SWEEPS="$HERE/quick/counter-1e-1.json $HERE/quick/counter-1e-2.json $HERE/quick/counter-1e-3.json $HERE/quick/counter-fused.json $HERE/quick/max.json $HERE/quick/max-noise.json" ;;
    *) echo "usage: sh paper/run.sh full|quick OUT [JOBS]" >&2; exit 2 ;;
esac
if [ -n "${PAPER_SWEEPS:-}" ]; then
    picked=
    for n in $PAPER_SWEEPS; do
        f=
        for g in $SWEEPS; do [ "$(basename "$g" .json)" = "$n" ] && f=$g; done
        [ -n "$f" ] || { echo "paper/run.sh: PAPER_SWEEPS: no sweep '$n' in $MODE mode (have:$(for g in $SWEEPS; do printf ' %s' "$(basename "$g" .json)"; done))" >&2; exit 2; }
        picked="$picked $f"
    done
    SWEEPS=$picked
fi
[ -n "$OUT" ] || { echo "usage: sh paper/run.sh full|quick OUT [JOBS]" >&2; exit 2; }
[ -x "$TRACC" ] || { echo "paper/run.sh: no tracc binary at $TRACC (run make)" >&2; exit 1; }
mkdir -p "$OUT" || exit 1
. "$HERE/unpack.sh"
# take_results NAME DIR: PAPER_FROM_RESULTS=1 — the jobs done in paper/results/NAME's archives and
# not in DIR are copied in (their results, logs and analyses; no models), so `sweep run` skips them
# (a job's configuration hash names no place). The report then counts them with the jobs run here.
take_results() {
    tr_tmp=$(mktemp -d) || return 1
    unpack_results "$1" "$tr_tmp"
    case $? in 0) ;; 1) rm -rf "$tr_tmp"; return 0 ;; *) rm -rf "$tr_tmp"; return 1 ;; esac
    tr_n=0
    for r in "$tr_tmp"/runs/*/result.json; do
        [ -f "$r" ] || continue
        id=$(basename "$(dirname "$r")")
        [ -f "$2/runs/$id/result.json" ] && continue
        mkdir -p "$2/runs/$id" && cp -R "$tr_tmp/runs/$id/." "$2/runs/$id/" || { rm -rf "$tr_tmp"; return 1; }
        tr_n=$((tr_n + 1))
    done
    rm -rf "$tr_tmp"
    # a result of another configuration (an older sweep file) is copied too, but is not done:
    # `sweep run` runs that job afresh, so only the done ones are counted
    tr_done=$("$TRACC" sweep status "$2" --json | sed -n 's/.*"done":\([0-9]*\).*/\1/p')
    echo "paper/run.sh: $1: $tr_n finished jobs copied from paper/results, $tr_done jobs done now (PAPER_FROM_RESULTS=1; not run again)" >&2
}
DIRS=
for f in $SWEEPS; do
    name=$(basename "$f" .json)
    [ "$MODE" = quick ] && name=quick-$name
    d=$OUT/$name
    "$TRACC" sweep plan "$f" -o "$d" >/dev/null || exit 1
    [ "${PAPER_FROM_RESULTS:-0}" = 1 ] && [ "$MODE" = full ] && { take_results "$name" "$d" || exit 1; }
    DIRS="$DIRS $d"
done
status=0
for d in $DIRS; do
    echo "paper/run.sh: running $d" >&2
    "$TRACC" sweep run "$d" -j "$JOBS" || status=1
done
# shellcheck disable=SC2086
"$TRACC" report $DIRS -o "$OUT" >/dev/null || exit 1
# the headline of each sweep: how many cells have the paper's regime, and what it cost
sh "$HERE/summary.sh" "$OUT/report.md" | sed 's/^/paper\/run.sh: /' >&2
echo "paper/run.sh: report in $OUT/report.md, $OUT/report.html, $OUT/report.json" >&2
[ $status -eq 0 ] || echo "paper/run.sh: some jobs failed (listed in the report; \`tracc sweep run DIR\` retries them)" >&2
exit $status
