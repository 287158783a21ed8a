#!/usr/bin/env bash
# Checks that a change is a refactoring: two `pooltriage` binaries give byte-identical outputs
# (analyze, pool, blocks; text and JSON; with and without symbols, with the corpus pooltag.txt)
# on every forge scenario of every profile, the corpus triage dump and a missing file.
#
#   scripts/same-outputs.sh OLD_BINARY NEW_BINARY [PROFILE...]
#
# Build the old binary from the commit before the change (e.g. `git worktree add /tmp/old HEAD~1
# && cargo build --manifest-path /tmp/old/Cargo.toml -p pooltriage`). The dumps are forged once
# with NEW_BINARY into $SAME_OUTPUTS_DIR (default /tmp/same-outputs) and kept for the next run.
# About 20 minutes for all five profiles on 2 cores (debug build); name profiles to do fewer.
# Exit 0 when every output is identical, 1 (with the differing files listed) otherwise.
set -uo pipefail
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
OLD=$(realpath "$1"); NEW=$(realpath "$2"); shift 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORPUS="${POOLTRIAGE_CORPUS:-$ROOT/../shared/corpus}"
WORK="${SAME_OUTPUTS_DIR:-/tmp/same-outputs}"
PROFILES=("$@")
[ ${#PROFILES[@]} -gt 0 ] || PROFILES=(xp-2600-x86pae win7-7601-x64 win10-17763-x64 win10-19041-x64 server2022-20348-x64)
SCENARIOS=(baseline leak-tagged leak-untagged shared-tag quota-leak nonpaged-exhaustion busy-server session-leak missing-pages)
mkdir -p "$WORK/dumps" "$WORK/old" "$WORK/new"

# Every command, for one binary into one folder.
outputs() {
    local bin=$1 out=$2 f=$3 name=$4 sym=$5 scenario=$6
    local b="$out/$name"
    "$bin" analyze --json --no-symbols $sym "$f" >"$b.analyze.json" 2>&1
    "$bin" analyze --no-symbols $sym "$f" >"$b.analyze.txt" 2>&1
    "$bin" analyze --json --no-symbols "$f" >"$b.analyze-nosym.json" 2>&1
    "$bin" analyze --json --no-symbols --pooltag "$CORPUS/pooltag.txt" $sym "$f" >"$b.analyze-pooltag.json" 2>&1
    "$bin" pool --json --no-symbols $sym "$f" >"$b.pool.json" 2>&1
    "$bin" pool --no-symbols $sym --sort nonpaged "$f" >"$b.pool.txt" 2>&1
    "$bin" pool --json --no-symbols "$f" >"$b.pool-nosym.json" 2>&1
    "$bin" pool --json --no-symbols $sym --tag 'N*' "$f" >"$b.pool-tag.json" 2>&1
    if [ "$scenario" != busy-server ]; then
        "$bin" blocks --json --no-symbols $sym "$f" >"$b.blocks.json" 2>&1
        "$bin" blocks --no-symbols $sym --tag 'L*' "$f" >"$b.blocks.txt" 2>&1
    fi
}

for p in "${PROFILES[@]}"; do
    if [ "$p" = xp-2600-x86pae ]; then sym="--symbols $CORPUS/pdb/ntkrnlpa.pdb"; else sym="--isf-dir $CORPUS/isf"; fi
    for s in "${SCENARIOS[@]}"; do
        f="$WORK/dumps/$p-$s.dmp"
        if [ ! -f "$f" ]; then
            size=(); [ "$s" = busy-server ] && size=(--size 268435456)
            # Scenarios a profile refuses (quota-leak on XP...) are skipped.
            "$NEW" forge --profile "$p" --format kernel-bitmap --scenario "$s" "${size[@]}" \
                --corpus "$CORPUS" --out "$f" >/dev/null 2>&1 || { rm -f "$f"; continue; }
        fi
        outputs "$OLD" "$WORK/old" "$f" "$p-$s" "$sym" "$s"
        outputs "$NEW" "$WORK/new" "$f" "$p-$s" "$sym" "$s"
    done
done
for bin in old new; do
    b=$OLD; [ $bin = new ] && b=$NEW
    "$b" analyze --json --no-symbols "$CORPUS/dumps/triage_x64.dmp" >"$WORK/$bin/triage.analyze.json" 2>&1
    "$b" pool --json --no-symbols "$CORPUS/dumps/triage_x64.dmp" >"$WORK/$bin/triage.pool.json" 2>&1
    "$b" analyze --no-symbols /nonexistent/dump.dmp >"$WORK/$bin/missing.txt" 2>&1; echo "exit $?" >>"$WORK/$bin/missing.txt"
done
if diff -rq "$WORK/old" "$WORK/new"; then
    echo "same outputs: $(ls "$WORK/new" | wc -l) files identical"
else
    exit 1
fi
