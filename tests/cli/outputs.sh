#!/bin/sh
# tests/cli/outputs.sh — the output rules of docs/reliability.md ("Outputs"), for every writer
# (compile -o, finetune -o/--checkpoint/--log, prune -o, plot -o, attn --svg, diff --svg):
# outputs checked before any work with the user's path named; symbolic links, /dev/null, folders
# and FIFOs refused and left as they were; stale temp files of dead processes removed by the next
# write; standard output on a full device is an error for every command that prints; a full
# filesystem fails model writes, an SVG and a log cleanly (skipped with a message if no small
# tmpfs can be mounted, directly or in a user namespace).
. tests/lib.sh

TRACC=$(cd "$(dirname "$TRACC")" && pwd)/$(basename "$TRACC")   # some checks run in another folder
T="$TMPD/w"
mkdir -p "$T"
E=rasp_examples
M="$T/m.safetensors"
F="$T/f.safetensors"
L="$T/l.jsonl"
SMALL="--at 1 --steps 4 --batch 4 --eval-size 10 --quiet"
"$TRACC" compile $E/count_a.rasp -o "$M" >/dev/null 2>&1 &&
    "$TRACC" finetune "$M" --task $E/count_b.rasp $SMALL --eval ft=$E/count_b.rasp --log "$L" -o "$F" >/dev/null 2>&1 ||
    { bad "cannot make the test models"; finish; exit 1; }

# ---- a full filesystem: a model write and a log fail with the path named, nothing half-written.
# Needs a small tmpfs: mounted directly (root), or in a user namespace (this script run again
# under `unshare -rm` with --fullfs-only); skipped with a message when neither is allowed.
NOPE="$T/no/such/input"
fullfs() {
    FS="$TMPD/fs"
    mkdir -p "$FS"
    mount -t tmpfs -o size=64k tmpfs "$FS" 2>/dev/null || return 1
    trap 'umount "$FS" 2>/dev/null; rm -rf "$TMPD"' EXIT
    dd if=/dev/zero of="$FS/fill" bs=4k 2>/dev/null
    expect_err "full fs: compile" 1 "$FS/x.safetensors: cannot write: No space left on device; nothing written" -- \
        "$TRACC" compile $E/count_a.rasp -o "$FS/x.safetensors"
    [ "$(ls "$FS")" = fill ] && ok || bad "full fs: left $(ls "$FS")"
    # an existing output is kept as it was
    rm "$FS/fill"; cp "$M" "$FS/x.safetensors"; dd if=/dev/zero of="$FS/fill" bs=4k 2>/dev/null
    expect_err "full fs: replace" 1 "No space left on device" -- "$TRACC" compile $E/count_b.rasp -o "$FS/x.safetensors"
    cmp -s "$M" "$FS/x.safetensors" && ok || bad "full fs: the old output changed"
    expect_err "full fs: finetune --log" 1 "--log $FS/l.jsonl: write failed: No space left on device; lines are missing" -- \
        "$TRACC" finetune "$M" --task $E/count_b.rasp $SMALL --log "$FS/l.jsonl" -o "$T/h.safetensors"
    [ ! -e "$T/h.safetensors" ] && ok || bad "full fs: finetune wrote its model despite the lost log"
    expect_err "full fs: finetune -o" 1 "$FS/h.safetensors: cannot write: No space left on device" -- \
        "$TRACC" finetune "$M" --task $E/count_b.rasp $SMALL -o "$FS/h.safetensors"
    expect_err "full fs: plot" 1 "$FS/p.svg: cannot write: No space left on device" -- "$TRACC" plot "$L" -o "$FS/p.svg"
    ls "$FS" | grep -q 'tracc-tmp' && bad "full fs: a temp file was left" || ok
    # a read-only filesystem: refused before any work (root can write anywhere else)
    if mount -o remount,ro "$FS" 2>/dev/null; then
        expect_err "read-only fs" 1 "-o $FS/y.safetensors: cannot write in folder $FS: Read-only file system" -- \
            "$TRACC" compile "$NOPE.rasp" -o "$FS/y.safetensors"
    fi
    umount "$FS"
}
if [ "$1" = --fullfs-only ]; then
    fullfs || echo "skipped: cannot mount a small tmpfs in the user namespace"
    finish
    exit $?
fi

# writer NAME OUT: the command line of writer NAME with OUT as its output; the inputs other than
# the output do not exist, so a command that did any work before checking OUT would fail on them
# with another message.
writer() {
    case $1 in
        compile) echo "$TRACC compile $NOPE.rasp -o $2" ;;
        finetune-o) echo "$TRACC finetune $NOPE.safetensors --task $NOPE.rasp -o $2" ;;
        finetune-checkpoint) echo "$TRACC finetune $NOPE.safetensors --task $NOPE.rasp -o $T/x.safetensors --checkpoint $2" ;;
        finetune-log) echo "$TRACC finetune $NOPE.safetensors --task $NOPE.rasp -o $T/x.safetensors --log $2" ;;
        prune) echo "$TRACC prune $NOPE.safetensors --task $NOPE.rasp -o $2" ;;
        plot) echo "$TRACC plot $NOPE.jsonl -o $2" ;;
        attn) echo "$TRACC attn --svg $2 $NOPE.safetensors a b" ;;
        diff) echo "$TRACC diff --svg $2 $NOPE.safetensors $NOPE.safetensors" ;;
    esac
}
flag_of() {
    case $1 in
        finetune-checkpoint) echo "--checkpoint" ;; finetune-log) echo "--log" ;;
        attn|diff) echo "--svg" ;; *) echo "-o" ;;
    esac
}
WRITERS="compile finetune-o finetune-checkpoint finetune-log prune plot attn diff"

# ---- pre-checks: before any work, naming the path as given
for w in $WRITERS; do
    fl=$(flag_of $w)
    expect_err "$w: missing folder" 1 "$fl missing/dir/x.out: folder missing/dir does not exist" -- \
        sh -c "cd '$T' && $(writer $w missing/dir/x.out)"
    expect_err "$w: folder is a file" 1 "$fl $M/x.out: $M is not a folder" -- $(writer $w "$M/x.out")
    expect_err "$w: ends in /" 1 "$fl $T/newdir/: names a folder" -- $(writer $w "$T/newdir/")
done
# an unwritable folder (as root only a read-only filesystem is unwritable: tested below with the
# full filesystem's remount when mounting works)
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$T/ro" && chmod 555 "$T/ro"
    expect_err "unwritable folder" 1 "-o $T/ro/x.safetensors: cannot write in folder $T/ro: Permission denied" -- \
        "$TRACC" compile $E/count_a.rasp -o "$T/ro/x.safetensors"
    chmod 755 "$T/ro"
fi

# an output that would overwrite an input (any spelling) is refused, the input kept
cp $E/count_a.rasp "$T/p.rasp"
expect_err "compile over its program" 1 "-o $T/./p.rasp: is the input program" -- \
    "$TRACC" compile "$T/p.rasp" -o "$T/./p.rasp"
cmp -s $E/count_a.rasp "$T/p.rasp" && ok || bad "compile over its program: the program changed"
for clash in "$M" "$T/x.safetensors" "$T/x.ckpt.safetensors"; do
    expect_err "finetune --log $clash" 1 "--log $clash: the log must differ from the output, the checkpoint and the model" -- \
        "$TRACC" finetune "$M" --task $E/count_b.rasp $SMALL -o "$T/x.safetensors" --log "$clash"
done

# ---- non-regular outputs: refused before any work, left untouched
ln -s "$F" "$T/link.out"
mkfifo "$T/fifo.out"
mkdir "$T/dir.out"
SUM=$(cksum <"$F")
for w in $WRITERS; do
    fl=$(flag_of $w)
    expect_err "$w: symlink" 1 "$fl $T/link.out: is a symbolic link (to $F)" -- $(writer $w "$T/link.out")
    expect_err "$w: /dev/null" 1 "$fl /dev/null: is a character device; tracc writes outputs only to regular files" -- \
        $(writer $w /dev/null)
    expect_err "$w: folder" 1 "$fl $T/dir.out: is a folder" -- $(writer $w "$T/dir.out")
    expect_err "$w: fifo" 1 "$fl $T/fifo.out: is a FIFO (named pipe)" -- $(writer $w "$T/fifo.out")
done
[ -L "$T/link.out" ] && [ "$(cksum <"$F")" = "$SUM" ] && ok || bad "the symlink or its target changed"
[ -c /dev/null ] && ok || bad "/dev/null is no longer a character device"
[ -p "$T/fifo.out" ] && [ -d "$T/dir.out" ] && ok || bad "the FIFO or the folder changed"
# the same refusal when the work is real (compile with a valid program), and nothing left beside it
expect_err "compile: symlink, real input" 1 "is a symbolic link" -- "$TRACC" compile $E/count_a.rasp -o "$T/link.out"
ls "$T" | grep -q 'tracc-tmp' && bad "a temp file was left" || ok

# ---- stale temp files: a dead process's are removed by the next write, a live one's kept
dead=$(sh -c 'echo $$')   # a PID that has exited
O="$T/o.safetensors"
echo partial >"$O.tracc-tmp.$dead"
echo live >"$O.tracc-tmp.$$"
echo other >"$T/other.safetensors.tracc-tmp.$dead"
expect_status_0() { "$@" >"$TMPD/out" 2>"$TMPD/err" && ok || { bad "$*: failed"; cat "$TMPD/err"; }; }
expect_status_0 "$TRACC" compile $E/count_a.rasp -o "$O" --verify none
[ ! -e "$O.tracc-tmp.$dead" ] && ok || bad "a dead process's temp file of the output was kept"
[ -e "$O.tracc-tmp.$$" ] && ok || bad "a live process's temp file was removed"
[ -e "$T/other.safetensors.tracc-tmp.$dead" ] && ok || bad "another output's temp file was removed"
rm -f "$O.tracc-tmp.$$" "$T/other.safetensors.tracc-tmp.$dead"
# the pre-check alone cleans too (a run that fails later still leaves none of them)
echo partial >"$T/s.svg.tracc-tmp.$dead"
expect_err "plot of a missing log" 1 "cannot read" -- "$TRACC" plot "$NOPE.jsonl" -o "$T/s.svg"
[ ! -e "$T/s.svg.tracc-tmp.$dead" ] && ok || bad "the pre-check kept a stale temp file"
# a replaced output keeps its permission bits
chmod 640 "$O"
expect_status_0 "$TRACC" compile $E/count_a.rasp -o "$O" --verify none
[ "$(stat -c %a "$O")" = 640 ] && ok || bad "mode of a replaced output: $(stat -c %a "$O")"

# ---- standard output on a full device: every command that prints fails, naming the stream
FULL=/dev/full
if [ -c $FULL ]; then
    P="$T/p.safetensors"
    while read -r name cmd; do
        [ "$name" = - ] && pre="tracc:" || pre="tracc $name:"
        sh -c "$cmd" >$FULL 2>"$TMPD/err"; rc=$?
        # the reason is named when the last flush saw it (run and prune flush as they go)
        if [ $rc -eq 1 ] && grep -q "$pre error writing standard output" "$TMPD/err" &&
            grep -q "the output is incomplete" "$TMPD/err"; then ok
        else bad "stdout on $FULL: $cmd: status $rc"; cat "$TMPD/err"; fi
    done <<EOF
- $TRACC --help
check $TRACC check --list $E/count_a.rasp
check $TRACC check --help
eval $TRACC eval $E/count_a.rasp a b a
run $TRACC run $M a b a
compile $TRACC compile $E/count_a.rasp -o $T/c.safetensors --verify none
verify $TRACC verify $M
explain $TRACC explain $M
diff $TRACC diff $M $F
probe $TRACC probe --steps 0 --train 20 --test 20 $M
probe $TRACC probe --neurons --test 20 $M
diff $TRACC diff --tensors $M $F
attn $TRACC attn $F a b
prune $TRACC prune $F --task $E/count_b.rasp --at 1 --eval-size 10 --grad-samples 4 -o $P
plot $TRACC plot $L -o $T/p.svg
finetune $TRACC finetune $M --task $E/count_b.rasp $SMALL -o $T/g.safetensors
EOF
    grep -q "No space left on device" "$TMPD/err" && ok || bad "stdout on $FULL: the reason is not named"
    # eval with many lines: the earlier buffers fail, not only the last
    yes "a b a" | head -n 20000 >"$TMPD/many"
    "$TRACC" eval $E/count_a.rasp <"$TMPD/many" >$FULL 2>"$TMPD/err"; rc=$?
    [ $rc -eq 1 ] && grep -q "error writing standard output" "$TMPD/err" && ok || { bad "eval, many lines: $rc"; cat "$TMPD/err"; }
else
    echo "skipped: no $FULL on this system"
fi

if fullfs; then :
elif unshare -rm true 2>/dev/null; then
    TRACC="$TRACC" unshare -rm sh "$0" --fullfs-only >"$TMPD/ns" 2>&1
    cat "$TMPD/ns" | grep -v '^RESULT'
    p=$(sed -n 's/^RESULT passed=\([0-9]*\) failed=\([0-9]*\)$/\1/p' "$TMPD/ns")
    f=$(sed -n 's/^RESULT passed=\([0-9]*\) failed=\([0-9]*\)$/\2/p' "$TMPD/ns")
    PASSED=$((PASSED + ${p:-0})); FAILED=$((FAILED + ${f:-1}))
else
    echo "skipped: the full-filesystem tests (cannot mount a small tmpfs here, as root or in a user namespace)"
fi

finish
