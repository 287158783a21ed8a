#!/usr/bin/env bash
# Upload throughput of one raw dump on loopback: `POST /api/v1/dumps` with the file as the body
# (curl streaming it from the page cache), timed by curl from the connection to the answer, i.e.
# streaming, SHA-256, the fsync of the file and of dumps/, and the database commit. Reports
# MB/s (10^6 bytes per second), the server's peak RSS (VmHWM of /proc/PID/status; a fresh
# server per run, so the peak is that run's) and the CPU time it spent on the upload (user +
# system, all threads: steadier than wall time on a shared machine). Also the two ceilings outside the server: curl into
# a sink that drops the bytes (bench/upload_sink.py), and the data directory's file system
# writing the same amount with an fdatasync at the end (dd).
#
#   bench/upload.sh                                   # 4 GiB, 3 runs, data dir under bench/out
#   bench/upload.sh --size $((1 << 30)) --runs 5 --data-base /dev/shm --bin target/release/pooltriage
#
# The file (a valid dump header from the corpus, then 64 MiB of random bytes and 64 MiB holes in
# turn: half of it as incompressible as real page data, half read as zeros) is made once in
# /work/benchdumps (or $UPLOAD_BENCH_DIR) and never committed. The analysis the upload queues
# runs `/bin/false`: the benchmark is the upload, not the analyzer.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

SIZE=$((4 << 30))
RUNS=3
BIN="$ROOT/target/release/pooltriage"
DATA_BASE="$ROOT/bench/out/upload"
FILES="${UPLOAD_BENCH_DIR:-/work/benchdumps}"
CORPUS="${POOLTRIAGE_CORPUS:-$ROOT/../shared/corpus}"
SINK=1
while [ $# -gt 0 ]; do
    case "$1" in
        --size) SIZE="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --data-base) DATA_BASE="$2"; shift 2 ;;
        --no-sink) SINK=0; shift ;;
        *) echo "usage: $0 [--size BYTES] [--runs N] [--bin PATH] [--data-base DIR] [--no-sink]" >&2; exit 2 ;;
    esac
done
[ -x "$BIN" ] || { echo "no server binary at $BIN (cargo build --release -p pooltriage)" >&2; exit 2; }
mkdir -p "$FILES" "$DATA_BASE"

FILE="$FILES/upload-mix-$SIZE.dmp"
if [ ! -f "$FILE" ]; then
    echo "== making $FILE"
    BLOCK=$((64 << 20))
    head -c "$BLOCK" /dev/urandom > "$FILES/random-64m.bin"
    head -c 8192 "$CORPUS/dumps/triage_x64.dmp" > "$FILE.part"
    truncate -s "$SIZE" "$FILE.part"
    off=$BLOCK
    while [ $((off + BLOCK)) -le "$SIZE" ]; do
        dd if="$FILES/random-64m.bin" of="$FILE.part" bs=1M seek=$((off >> 20)) conv=notrunc status=none
        off=$((off + 2 * BLOCK))
    done
    mv "$FILE.part" "$FILE"
fi
cat "$FILE" > /dev/null   # into the page cache: the client's disk is not what is measured

# Whatever this script started goes with it, also when a step fails half-way.
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
mbps() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]) / 1e6:.0f}')" "$1" "$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
wait_port() {
    python3 - "$1" <<'PY'
import socket, sys, time
for _ in range(300):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("nothing listens on port " + sys.argv[1])
PY
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "file: $FILE ($SIZE bytes); data dir under $DATA_BASE ($(df --output=fstype "$DATA_BASE" | tail -1)); server $BIN"

if [ "$SINK" = 1 ]; then
    port=$(free_port)
    python3 "$ROOT/bench/upload_sink.py" "$port" & sink=$!
    pids+=("$sink")
    wait_port "$port"
    rates=()
    for i in $(seq 1 "$RUNS"); do
        t=$(curl -sS -o /dev/null -w '%{time_total}' -X POST -H 'Expect:' \
            -H 'Content-Type: application/octet-stream' -T "$FILE" "http://127.0.0.1:$port/sink")
        rates+=("$(mbps "$SIZE" "$t")")
    done
    kill "$sink"; wait "$sink" 2>/dev/null || true
    echo "ceiling: curl into a discarding sink: ${rates[*]} MB/s, median $(median "${rates[@]}")"
    rates=()
    for i in $(seq 1 "$RUNS"); do
        out=$(dd if="$FILE" of="$DATA_BASE/dd-test" bs=4M conv=fdatasync 2>&1 | tail -1)
        rm -f "$DATA_BASE/dd-test"
        s=$(echo "$out" | sed -E 's/.* copied, ([0-9.]+) s.*/\1/')
        rates+=("$(mbps "$SIZE" "$s")")
    done
    echo "ceiling: dd of the file into the data dir's file system + fdatasync: ${rates[*]} MB/s, median $(median "${rates[@]}")"
fi

rates=(); peaks=()
for i in $(seq 1 "$RUNS"); do
    data="$DATA_BASE/run-$i"
    rm -rf "$data"; mkdir -p "$data"
    token=$("$BIN" tokens create --tenant bench --role admin --data-dir "$data" 2>/dev/null)
    port=$(free_port)
    "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" --no-symbols --workers 1 \
        --analyzer /bin/false > "$data/serve.log" 2>&1 & srv=$!
    pids+=("$srv")
    wait_port "$port"
    cpu0=$(awk '{print $14 + $15}' "/proc/$srv/stat")
    t=$(curl -sS -o "$data/answer.json" -w '%{time_total}' -X POST -H 'Expect:' \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
        -T "$FILE" "http://127.0.0.1:$port/api/v1/dumps")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$srv/status")
    cpu=$(awk -v c0="$cpu0" -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15 - c0) / hz}' "/proc/$srv/stat")
    kill "$srv"; wait "$srv" 2>/dev/null || true
    grep -q '"sha256"' "$data/answer.json" || { echo "upload failed: $(cat "$data/answer.json")" >&2; exit 1; }
    rates+=("$(mbps "$SIZE" "$t")"); peaks+=("$((hwm / 1024))")
    echo "run $i: $t s, ${rates[-1]} MB/s, server peak RSS ${peaks[-1]} MiB, server CPU $cpu s"
    rm -rf "$data"
done
echo "server: ${rates[*]} MB/s, median $(median "${rates[@]}") MB/s; peak RSS ${peaks[*]} MiB, max $(printf '%s\n' "${peaks[@]}" | sort -g | tail -1) MiB"
