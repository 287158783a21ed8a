#!/usr/bin/env bash
# Service benchmark: upload throughput on loopback (raw and resumable chunked)
# with the server's resident memory while a 4 GiB dump streams in, and analysis jobs per minute
# for small forged dumps with 1 and 2 workers. Writes its section of bench/RESULTS.md (between
# the bench/service.sh markers) and bench/out/service.json. See bench/README.md.
#
#   bench/service.sh                       # 4 GiB dump, 2 runs per mode, 20 small dumps
#   bench/service.sh --size $((8 << 30)) --runs 3 --small 40 --workers 1,2
#
# Needs about 2x the dump size free on the disk of bench/out/ (the dump is a sparse file; the
# server writes what it receives for real). Takes about 5 minutes on 2 cores, plus the build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

SIZE=$((4 << 30))
RUNS=2
SMALL=20
WORKERS=1,2
PROFILE=win10-19041-x64
while [ $# -gt 0 ]; do
    case "$1" in
        --size) SIZE="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --small) SMALL="$2"; shift 2 ;;
        --workers) WORKERS="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        *) echo "usage: $0 [--size BYTES] [--runs N] [--small N] [--workers 1,2] [--profile P]" >&2; exit 2 ;;
    esac
done

step() { printf '\n== %s\n' "$*"; }

step "build (release)"
cargo build --release -p pooltriage
BIN="$ROOT/target/release/pooltriage"
CORPUS="${POOLTRIAGE_CORPUS:-$ROOT/../shared/corpus}"
OUT="$ROOT/bench/out/service"
mkdir -p "$OUT"

BIG="$OUT/$PROFILE-full-bitmap-$SIZE.dmp"
if [ ! -f "$BIG" ]; then
    step "forge the large dump: $PROFILE full-bitmap, $SIZE bytes of memory (every page stored)"
    POOLTRIAGE_CORPUS="$CORPUS" "$BIN" forge --profile "$PROFILE" --format full-bitmap \
        --scenario leak-tagged --size "$SIZE" --out "$BIG"
fi

step "forge $SMALL small dumps ($PROFILE kernel-bitmap leak-tagged, 256 MiB machine)"
BASE="$OUT/small-base.dmp"
if [ ! -f "$BASE" ]; then
    POOLTRIAGE_CORPUS="$CORPUS" "$BIN" forge --profile "$PROFILE" --format kernel-bitmap \
        --scenario leak-tagged --size $((256 << 20)) --out "$BASE"
fi
smalls=()
for i in $(seq 1 "$SMALL"); do
    f="$OUT/small-$i.dmp"
    # Distinct content (else the service analyses one and dedupes the rest): the same dump
    # with 8 bytes of its own appended after the last page, which the reader ignores.
    if [ ! -f "$f" ]; then
        cp --sparse=always "$BASE" "$f"
        printf '%08d' "$i" >> "$f"
    fi
    smalls+=("$f")
done

# The analyzer child inherits the server's environment: with the kernel's ISF it runs the whole
# pool analysis (without it, it stops early with "not analyzable"). A copy, never a link.
ISF="$OUT/isf"
if [ ! -d "$ISF" ]; then
    cp -r "$CORPUS/isf" "$ISF"
    chmod -R u+w "$ISF"
fi
export POOLTRIAGE_ISF_DIR="$ISF"

step "measure"
python3 "$ROOT/bench/service_measure.py" --bin "$BIN" --big "$BIG" \
    --big-desc "forged $PROFILE full-bitmap leak-tagged, sparse file read from the page cache" \
    --small "${smalls[@]}" \
    --small-desc "forged $PROFILE kernel-bitmap leak-tagged, 256 MiB machine, $(stat -c %s "$BASE") bytes each" \
    --runs "$RUNS" --workers "$WORKERS" --work "$OUT/data" \
    --results "$ROOT/bench/RESULTS.md" --json "$ROOT/bench/out/service.json"
