#!/usr/bin/env bash
# Pool benchmark: forge busy-server kernel dumps (by default 2 GiB and 8 GiB of
# physical memory, win10-19041-x64; 8 GiB holds ~2.1 million pool blocks), then time side by side,
# in one run: pooltriage's whole pool analysis (`analyze --json`; also `pool --json` and
# `blocks --json`) and Volatility 3's windows.bigpools and windows.poolscanner
# on the same dumps. Two sizes show whether resident memory grows with the dump.
# Writes its section of bench/RESULTS.md and bench/POOL_RESULTS.json. See bench/README.md.
#
#   bench/pool.sh [--runs N] [--sizes "2 8"] [--profile NAME] [--poolscanner-timeout SECONDS] [--note TEXT]
#                 [--bin PATH]   (a release pooltriage built elsewhere: no cargo build here)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUNS=3
SIZES="2 8"
PROFILE=win10-19041-x64
SCANNER_TIMEOUT=3600
NOTE=""
BIN=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --sizes) SIZES="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        --poolscanner-timeout) SCANNER_TIMEOUT="$2"; shift 2 ;;
        --note) NOTE="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        *) echo "usage: bench/pool.sh [--runs N] [--sizes \"2 8\"] [--profile NAME] [--poolscanner-timeout S] [--note TEXT] [--bin PATH]" >&2; exit 2 ;;
    esac
done

# The venv (Volatility 3), .cache/vol-symbols (copies of the corpus ISFs) and /usr/bin/time come
# from the test command's set-up.
eval "$(scripts/test.sh --setup-only)"
CORPUS="${POOLTRIAGE_CORPUS:-$ROOT/../shared/corpus}"

if [ -n "$BIN" ]; then
    PT="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
else
    echo "==> cargo build --release (pooltriage)" >&2
    cargo build --release -p pooltriage
    PT="$ROOT/target/release/pooltriage"
fi

OUT="$ROOT/bench/out"   # git-ignored
mkdir -p "$OUT"
dumps=()
for gib in $SIZES; do
    dump="$OUT/$PROFILE-busy-server-${gib}g.dmp"
    echo "==> forging $dump" >&2
    start=$(date +%s%N)
    POOLTRIAGE_CORPUS="$CORPUS" "$PT" forge --profile "$PROFILE" --format kernel-bitmap \
        --scenario busy-server --size "$((gib << 30))" --out "$dump"
    echo "    forged in $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
    dumps+=("$PROFILE busy-server ${gib} GiB=$dump")
done

# The whole analysis is `analyze` (tag tables, big pages, classic pages, segment heap, !vm,
# quota, attribution, verdict). `pool` (the same walks without the verdict) and `blocks` (the
# same walks, keeping and printing every block: the !poolfind listing) are timed beside it; a
# binary without `analyze` is measured by pool + blocks.
if "$PT" analyze --help >/dev/null 2>&1; then
    OURS="analyze pool blocks"
    WHOLE="analyze"
else
    OURS="pool blocks"
    WHOLE="pool blocks"
fi

BENCH_POOLTRIAGE="$PT" \
BENCH_ISF_DIR="$CORPUS/isf" \
BENCH_VOL="${POOLTRIAGE_VOL:-$ROOT/.venv/bin/vol}" \
BENCH_VOL_SYMBOLS="${POOLTRIAGE_VOL_SYMBOLS:-$ROOT/.cache/vol-symbols}" \
BENCH_OUT="$OUT" \
BENCH_OUR_COMMANDS="$OURS" \
BENCH_WHOLE="$WHOLE" \
    "$POOLTRIAGE_PYTHON" bench/pool_measure.py --runs "$RUNS" --out "$ROOT/bench/RESULTS.md" \
        --poolscanner-timeout "$SCANNER_TIMEOUT" --note "$NOTE" "${dumps[@]}"
