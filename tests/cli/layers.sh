#!/bin/sh
# The layers run one way (docs/architecture.md): common <- runtime <- compiler <- train <-
# analysis <- sweep <- cli, and inside the compiler front <- interp <- back. A file may include
# headers of its own
# layer and of the layers before it, never of a later one. Every #include "..." in those
# folders is checked (system headers <...> are not ours); tests/ and bench/ may include
# anything.
. tests/lib.sh

LAYERS="common runtime compiler/front compiler/interp compiler/back compiler train analysis sweep cli"

# layer_of PATH: the rank of the longest layer that is a folder prefix of PATH, or -1.
layer_of() {
    best=-1 blen=0 r=0
    for l in $LAYERS; do
        case $1 in
            "$l"/*) if [ ${#l} -gt $blen ]; then best=$r blen=${#l}; fi ;;
        esac
        r=$((r + 1))
    done
    echo $best
}

name_of() {
    r=0
    for l in $LAYERS; do
        [ "$r" -eq "$1" ] && { echo "$l"; return; }
        r=$((r + 1))
    done
}

# check_tree ROOT: prints one line per include against the order; status 1 if any.
check_tree() {
    root=$1
    absroot=$(cd "$root" && pwd -P)
    found=0
    for top in common runtime compiler train analysis sweep cli; do
        [ -d "$root/$top" ] || continue
        for f in $(find "$root/$top" -type f \( -name '*.c' -o -name '*.h' -o -name '*.y' -o -name '*.l' \) | sort); do
            rel=${f#"$root"/}
            dir=$(dirname "$rel")
            from=$(layer_of "$rel")
            for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
                case $inc in
                    ../*) path=$(cd "$root/$dir" 2>/dev/null && cd "$(dirname "$inc")" 2>/dev/null && pwd -P) || path=
                          path=${path#"$absroot"/}/$(basename "$inc") ;;
                    */*) path=$inc ;;
                    *) path=$dir/$inc ;;            # same folder (or a generated header of it)
                esac
                to=$(layer_of "$path")
                [ "$to" -lt 0 ] && continue      # not one of ours (e.g. the build's gen/)
                if [ "$to" -gt "$from" ]; then
                    echo "$rel includes \"$inc\": $(name_of "$from") may not depend on $(name_of "$to")"
                    found=1
                fi
            done
        done
    done
    return $found
}

# The tree itself.
if out=$(check_tree .); then ok; else bad "includes against the layer order:"; echo "$out"; fi

# The check catches planted upward includes: runtime -> compiler, a relative one from
# common, and front -> back inside the compiler; same-layer and downward ones pass.
mkdir -p "$TMPD/t/runtime" "$TMPD/t/common" "$TMPD/t/compiler/front" "$TMPD/t/compiler/back" "$TMPD/t/analysis"
printf '#include "compiler/front/x.h"\n' >"$TMPD/t/runtime/a.c"
printf '#include "../analysis/y.h"\n' >"$TMPD/t/common/b.h"
printf '#include "compiler/back/lower.h"\n#include "ast.h"\n' >"$TMPD/t/compiler/front/c.c"
printf '#include "runtime/model.h"\n#include "compiler/front/ast.h"\n#include "z.h"\n' >"$TMPD/t/compiler/back/ok.c"
if out=$(check_tree "$TMPD/t"); then
    bad "the check missed planted upward includes"
else
    n=$(echo "$out" | grep -c .)
    if [ "$n" -eq 3 ] && echo "$out" | grep -q 'runtime/a.c' && echo "$out" | grep -q 'common/b.h' &&
        echo "$out" | grep -q 'compiler/front/c.c includes "compiler/back/lower.h"'; then ok
    else bad "planted includes: expected 3 reports, got:"; echo "$out"; fi
fi

finish
