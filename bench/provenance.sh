#!/usr/bin/env bash
# Provenance benchmark: `pooltriage analyze --json` with block provenance (this tree) beside an
# older build without it (--old), on forged busy-server dumps (win10-19041-x64, kernel-bitmap;
# 8 GiB holds ~2.1 million pool blocks, 32 GiB ~8.3 million). Runs alternate old/new after one
# warm-up each (the dump in the page cache), each under /usr/bin/time; prints the medians of
# wall, user and system seconds and of peak RSS, as a Markdown table for bench/RESULTS.md.
#
#   bench/provenance.sh --old PATH [--new PATH] [--sizes "8 32"] [--runs N]
#
# The old build: a release `pooltriage` built from a commit before provenance, e.g.
#   git worktree add /tmp/old 62b438f && cargo build --release --manifest-path /tmp/old/Cargo.toml
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OLD=""
NEW="$ROOT/target/release/pooltriage"
SIZES="8 32"
RUNS=3
while [ $# -gt 0 ]; do
    case "$1" in
        --old) OLD="$2"; shift 2 ;;
        --new) NEW="$2"; shift 2 ;;
        --sizes) SIZES="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        *) echo "usage: bench/provenance.sh --old PATH [--new PATH] [--sizes \"8 32\"] [--runs N]" >&2; exit 2 ;;
    esac
done
[ -x "$OLD" ] || { echo "bench/provenance.sh: --old must name a pooltriage binary" >&2; exit 2; }
[ -x "$NEW" ] || cargo build --release -p pooltriage
CORPUS="${POOLTRIAGE_CORPUS:-$ROOT/../shared/corpus}"
OUT="$ROOT/bench/out"   # git-ignored
mkdir -p "$OUT"

# One timed run: "wall user sys maxrss_kb" on stdout.
timed() {
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/time.txt" "$@" >/dev/null 2>"$OUT/stderr.txt" || {
        echo "failed: $*" >&2; cat "$OUT/stderr.txt" >&2; exit 1; }
    cat "$OUT/time.txt"
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

echo "| dump | blocks | build | wall s | user s | sys s | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|"
for gib in $SIZES; do
    dump="$OUT/win10-19041-x64-busy-server-${gib}g.dmp"
    if [ ! -f "$dump" ]; then
        POOLTRIAGE_CORPUS="$CORPUS" "$NEW" forge --profile win10-19041-x64 --format kernel-bitmap \
            --scenario busy-server --size "$((gib << 30))" --out "$dump" >&2
    fi
    blocks=$("$NEW" analyze --json --isf-dir "$CORPUS/isf" "$dump" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["provenance"]["limits"]["blocks_scanned"])')
    : >"$OUT/old.txt"; : >"$OUT/new.txt"
    timed "$OLD" analyze --json --isf-dir "$CORPUS/isf" "$dump" >/dev/null
    timed "$NEW" analyze --json --isf-dir "$CORPUS/isf" "$dump" >/dev/null
    for _ in $(seq "$RUNS"); do
        timed "$OLD" analyze --json --isf-dir "$CORPUS/isf" "$dump" >>"$OUT/old.txt"
        timed "$NEW" analyze --json --isf-dir "$CORPUS/isf" "$dump" >>"$OUT/new.txt"
    done
    for which in old new; do
        f="$OUT/$which.txt"
        printf '| %s GiB busy-server | %s | %s | %s | %s | %s | %s |\n' "$gib" "$blocks" "$which" \
            "$(cut -d' ' -f1 "$f" | median)" "$(cut -d' ' -f2 "$f" | median)" \
            "$(cut -d' ' -f3 "$f" | median)" "$(( $(cut -d' ' -f4 "$f" | median | cut -d. -f1) / 1024 ))"
    done
done
