#!/usr/bin/env bash
# Benchmark: forge an 8 GiB kernel-bitmap and an 8 GiB full-bitmap dump, then time
# side by side, in one run: `pooltriage inspect`, our reader reading every stored page
# (analyzer example read_all_pages), and kdmp-parser reading the same pages. Writes
# bench/RESULTS.md. See bench/README.md.
#
#   bench/run.sh [--runs N] [--size BYTES] [--profile NAME]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUNS=5
SIZE=$((8 << 30))
PROFILE=win10-19041-x64
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --profile) PROFILE="$2"; shift 2 ;;
        *) echo "usage: bench/run.sh [--runs N] [--size BYTES] [--profile NAME]" >&2; exit 2 ;;
    esac
done

# The venv with kdmp-parser and /usr/bin/time come from the test command's set-up.
eval "$(scripts/test.sh --setup-only)"

echo "==> cargo build --release (pooltriage, read_all_pages example)" >&2
cargo build --release -p pooltriage
cargo build --release -p pooltriage-analyzer --example read_all_pages

OUT="$ROOT/bench/out"   # git-ignored; the dumps are sparse files
mkdir -p "$OUT"
dumps=()
for fmt in kernel-bitmap full-bitmap; do
    dump="$OUT/$PROFILE-$fmt-$SIZE.dmp"
    echo "==> forging $dump" >&2
    start=$(date +%s%N)
    target/release/pooltriage forge --profile "$PROFILE" --format "$fmt" --size "$SIZE" --out "$dump"
    echo "    forged in $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
    dumps+=("$PROFILE $fmt=$dump")
done

# inspect's symbol lookups (symbol server, cache) are not dump reading: leave them out when the
# binary has them, so the number is the dump reader's.
INSPECT_ARGS=""
if target/release/pooltriage inspect --help 2>/dev/null | grep -q -- '--no-symbols'; then
    INSPECT_ARGS="--no-symbols"
fi

BENCH_INSPECT_ARGS="$INSPECT_ARGS" \
BENCH_POOLTRIAGE="$ROOT/target/release/pooltriage" \
BENCH_READ_ALL="$ROOT/target/release/examples/read_all_pages" \
BENCH_PYTHON="$POOLTRIAGE_PYTHON" \
BENCH_KDMP_SCRIPT="$ROOT/bench/kdmp_read_all.py" \
    "$POOLTRIAGE_PYTHON" bench/measure.py --runs "$RUNS" --size "$((SIZE >> 30)) GiB" \
        --out "$ROOT/bench/RESULTS.md" "${dumps[@]}"
