#!/bin/sh
# tests/cli/standalone.sh — the repository stands alone: no file in it reads or cites a file
# outside it (the project's working folders, or notes that only its authors have), the
# reference data it needs is in tests/data/ with its provenance, and every relative link in
# the Markdown pages points at a file that exists.
#
# Files checked: `git ls-files` when run in a git checkout, else every file under the
# current folder except build/ and .git/. Binary files are skipped (grep -I).
. tests/lib.sh

# The patterns are built from pieces so that this file does not match itself.
S=shar; S=${S}ed
W=wor; W=/${W}k/
N=notes
PAT="\.\./$S([^a-z_]|$)|(^|[^a-z_])$S/(reference|spec)|$W|(^|[^a-z_./-])spe""c/[a-z_-]+\.md|pytorch-anch""or|tracr-$N|paper-$N|trainer-cross""check|style-anch""ors\.md"

LIST="$TMPD/files"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && [ "$(git rev-parse --show-toplevel)" = "$(pwd -P)" ]; then
    git ls-files -z | xargs -0 -n 200 sh -c 'for f; do [ -f "$f" ] && printf "%s\n" "$f"; done' sh >"$LIST"
else
    find . -path ./build -prune -o -path ./.git -prune -o -type f -print | sed 's|^\./||' >"$LIST"
fi

if [ ! -s "$LIST" ]; then
    bad "no files to check (run from the repository root)"
else
    ok
fi

# 1. No file refers to anything outside the repository.
tr '\n' '\0' <"$LIST" | xargs -0 grep -I -n -E "$PAT" >"$TMPD/hits" 2>/dev/null
if [ -s "$TMPD/hits" ]; then
    bad "files refer to paths or notes outside the repository:"
    cat "$TMPD/hits"
else
    ok
fi

# 2. The Tracr reference data is in the repository, complete, with its provenance.
for f in tests/data/tracr_io.jsonl tests/data/tracr_sizes.tsv tests/data/README.md; do
    if grep -qx "$f" "$LIST"; then ok; else bad "$f is not part of the repository"; fi
done
n=$(grep -c . tests/data/tracr_io.jsonl 2>/dev/null || echo 0)
if [ "$n" -eq 360 ]; then ok; else bad "tests/data/tracr_io.jsonl has $n rows, wanted 360"; fi
n=$(grep -c . tests/data/tracr_sizes.tsv 2>/dev/null || echo 0)
if [ "$n" -ge 2 ] && head -n 1 tests/data/tracr_sizes.tsv | grep -q '^config	program	'; then ok
else bad "tests/data/tracr_sizes.tsv lacks its header or rows"; fi
if grep -q '9ce2b8c' tests/data/README.md && grep -q 'rasp.evaluate' tests/data/README.md; then ok
else bad "tests/data/README.md does not give the data's provenance (Tracr commit, evaluator)"; fi

# 3. Every relative link in a Markdown page names a file or folder of the repository.
grep -E '\.md$' "$LIST" | while IFS= read -r md; do
    dir=$(dirname "$md")
    grep -o -E '\]\([^)#[:space:]]+(#[^)]*)?\)' "$md" | sed -E 's/^\]\(//; s/\)$//; s/#.*$//' |
        while IFS= read -r link; do
            case "$link" in http://*|https://*|mailto:*|'') continue ;; esac
            [ -e "$dir/$link" ] || echo "$md: link to $link, which does not exist"
        done
done >"$TMPD/links"
if [ -s "$TMPD/links" ]; then bad "broken links:"; cat "$TMPD/links"; else ok; fi

finish
