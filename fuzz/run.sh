#!/usr/bin/env bash
# Fuzzes every target (or those named) for SECONDS each, starting from fuzz/seeds/<target>/ and
# the corpus kept in fuzz/corpus/<target>/ (not committed), and prints one line per target:
#   target seconds execs crashes
# A crash, hang (-timeout) or out-of-memory (-rss_limit_mb, which also caps single
# allocations) leaves its input in fuzz/artifacts/<target>/; copy it to
# fuzz/regressions/<target>/ once fixed, where the harness's tests replay it.
# Usage: fuzz/run.sh SECONDS [TARGET...]
set -uo pipefail
FUZZ="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ"
secs="${1:?usage: fuzz/run.sh SECONDS [TARGET...]}"
shift
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(ls seeds)
export RUSTC_BOOTSTRAP=1
RUSTC_BOOTSTRAP=1 cargo fuzz build -O >/dev/null || exit 1
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null
    log="artifacts/$t/last-run.log"
    # -max_len: the memory seeds and images are up to 64 KiB.
    cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    execs="$(awk '/stat::number_of_executed_units/ {print $2}' "$log")"
    crashes="$(find "artifacts/$t" -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' | wc -l)"
    printf '%-12s %5ss %10s execs %s findings (exit %s)\n' "$t" "$secs" "${execs:-?}" "$crashes" "$rc"
    [ "$rc" -eq 0 ] || status=1
done
exit "$status"
