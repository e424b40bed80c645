# paper/unpack.sh — sourced by paper/results.sh and paper/run.sh.
# unpack_results NAME DEST: every archive paper/results/NAME/*.tar.xz (tracc sweep packs) unpacked
# into the directory DEST in name order (dates: a later one's files win). Returns 1 when NAME has no
# archive, 2 with a message when an archive holds a model or a lock (a pack never does) or cannot
# be unpacked.
unpack_results() {
    set -- "$1" "$2" "$HERE/results/$1/"*.tar.xz
    [ -e "$3" ] || return 1
    ur_dest=$2
    shift 2
    for a in "$@"; do
        if tar -tJf "$a" | grep -E '\.safetensors|(^|/)lock$' >/dev/null; then
            echo "$0: $a holds a model or a lock: not a pack" >&2
            return 2
        fi
        tar -xJf "$a" -C "$ur_dest" || { echo "$0: cannot unpack $a" >&2; return 2; }
    done
}
