#!/bin/sh
# paper/summary.sh REPORT.md: the headline of each sweep in a `tracc report` Markdown file, one
# line each on stdout: how many cells have the paper's regime, and what the sweep cost.
# paper/run.sh prints it at the end of `make paper` / `make paper-quick`.
[ $# -eq 1 ] && [ -r "$1" ] || { echo "usage: sh paper/summary.sh REPORT.md" >&2; exit 2; }
awk '/^## Table 3: / { name = substr($0, 13) }
     /^Same regime as the paper in / { sub(/\. Different:.*/, "."); print name ": " tolower(substr($0, 1, 1)) substr($0, 2) }
     /^## / && !/^## Compute/ { c = 0 }
     /^## Compute/ { c = 1; next }
     c && /CPU time/ { sub(/ \(each stage process.*records it\)/, ""); gsub(/\*\*/, ""); sub(/ By stage: [^.]*\./, ""); print "compute, " $0 }' "$1"
