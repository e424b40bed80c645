#!/bin/sh
# The layers run one way (docs/architecture.md): common <- runtime <- compiler <- train <-
# analysis <- cli. A file may include headers of its own layer and of the layers before it,
# never of a later one. Every #include "..." in those folders is checked (system headers
# <...> are not ours); tests/ and bench/ may include anything.
. tests/lib.sh

LAYERS="common runtime compiler train analysis cli"

rank() {
    r=0
    for l in $LAYERS; do
        [ "$l" = "$1" ] && { echo $r; return; }
        r=$((r + 1))
    done
    echo -1
}

# check_tree ROOT: prints one line per include against the order; status 1 if any.
check_tree() {
    root=$1
    found=0
    for l in $LAYERS; do
        [ -d "$root/$l" ] || continue
        for f in $(find "$root/$l" -type f \( -name '*.c' -o -name '*.h' -o -name '*.y' -o -name '*.l' \) | sort); do
            rel=${f#"$root"/}
            dir=$(dirname "$rel")
            from=$(rank "$l")
            for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
                case $inc in
                    ../*) path=$(cd "$root/$dir" 2>/dev/null && cd "$(dirname "$inc")" 2>/dev/null && pwd -P) || path=
                          top=${path#"$(cd "$root" && pwd -P)"/}; top=${top%%/*} ;;
                    */*) top=${inc%%/*} ;;
                    *) top=$l ;;                 # same folder (or a generated header of it)
                esac
                to=$(rank "$top")
                [ "$to" -lt 0 ] && continue      # not one of ours (e.g. the build's gen/)
                if [ "$to" -gt "$from" ]; then
                    echo "$rel includes \"$inc\": $l may not depend on $top"
                    found=1
                fi
            done
        done
    done
    return $found
}

# The tree itself.
if out=$(check_tree .); then ok; else bad "includes against the layer order:"; echo "$out"; fi

# The check catches a planted upward include (runtime -> compiler) and a relative one.
mkdir -p "$TMPD/t/runtime" "$TMPD/t/compiler" "$TMPD/t/common"
printf '#include "compiler/x.h"\n' >"$TMPD/t/runtime/a.c"
printf '#include "../analysis/y.h"\n' >"$TMPD/t/common/b.h"
mkdir -p "$TMPD/t/analysis"
printf '#include "runtime/model.h"\n#include "z.h"\n' >"$TMPD/t/compiler/ok.c"
if out=$(check_tree "$TMPD/t"); then
    bad "the check missed planted upward includes"
else
    n=$(echo "$out" | grep -c .)
    if [ "$n" -eq 2 ] && echo "$out" | grep -q 'runtime/a.c' && echo "$out" | grep -q 'common/b.h'; then ok
    else bad "planted includes: expected 2 reports, got:"; echo "$out"; fi
fi

finish
