#!/usr/bin/env bash
# The project's one test command (README "Test"; `.ci/run` runs exactly this).
#
# On a fresh Debian machine, as root, it installs what the end-to-end tests need and runs every
# test of the workspace:
#   1. Debian packages (one list below), installed only when missing, so a warm machine skips apt.
#   2. A project-local venv `.venv/` with the independent readers pinned in
#      tests/independent/requirements.txt (kdmp-parser, Volatility 3, symstore).
#   3. `.cache/vol-symbols/`: a Volatility 3 symbols dir. `windows/ntkrnlmp.pdb` holds copies of
#      the corpus ISFs (never links: see below); `windows/ntkrnlpa.pdb/<GUID>-<age>.json.xz` is the XP SP3
#      PAE kernel's ISF, made here by Volatility's own pdbconv from the corpus ntkrnlpa.pdb, so
#      the XP checks rely on Volatility's reading of Microsoft's PDB, not on ours.
#   4. `cargo fmt --check` and `cargo clippy -D warnings`, `cargo build` of every binary, then
#      `cargo test --workspace`, with POOLTRIAGE_PYTHON,
#      POOLTRIAGE_VOL and POOLTRIAGE_VOL_SYMBOLS telling the end-to-end tests where those are.
#      The workspace's tests include fuzz/harness: every fuzz target's body replays every seed
#      and regression input of fuzz/ (a few seconds). The fuzzing itself is not run by default:
#      building the sanitized fuzz crate alone takes longer than CI's budget (fuzz/README.md,
#      "CI"); POOLTRIAGE_FUZZ_SECONDS=N runs every target N seconds after the tests, installing
#      cargo-fuzz if it is missing.
#
# Debug profile on purpose: dependencies are built with opt-level 2 (root Cargo.toml), the tests
# and the binary they drive share one compilation, and a second (release) build would double the
# CI time on 2 cores.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CORPUS="${POOLTRIAGE_CORPUS:-$ROOT/../shared/corpus}"
export CI="${CI:-}" DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

step() { printf '==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

[ -d "$CORPUS/isf/ntkrnlmp.pdb" ] || die "corpus not found at $CORPUS (expected ../shared/corpus beside the repo)"

# --- 1. Debian packages -------------------------------------------------------------------------
# The single list of Debian packages the tests and the benchmark need. Later issues add theirs here
# (e.g. gcab lcab for cabinet files, libusb-1.0-0 for MemProcFS, chromium chromium-driver for UI tests).
APT_PACKAGES=(
    python3 python3-venv   # the venv for the independent readers
    xz-utils               # the XP ISF is stored as .json.xz
    time                   # /usr/bin/time -v in bench/run.sh
    ca-certificates        # crates.io and PyPI over TLS
    llvm                   # llvm-pdbutil: independent PDB reader for the symbol-name tests
    gcab                   # independent CAB writer: .pd_ files for the symbol store tests
    binutils-mingw-w64-x86-64  # x86_64-w64-mingw32-objdump: independent disassembler for the pool-tag scan tests
    binutils-mingw-w64-i686    # i686-w64-mingw32-objdump: the same for the x86 test drivers (tests/alloc_sites_real.rs, tests/fpo_real.rs)
    clang-14 lld-14            # build the test drivers of tests/drivers/ at test time (with llvm's llvm-dlltool-14, llvm-pdbutil-14)
    libusb-1.0-0           # loaded by MemProcFS's leechcore (tests/pool_independent.rs)
    chromium               # headless browser driven over CDP by tests/service_browser.rs (upload portal) and tests/service_layout.rs (widths, contrast)
    postgresql             # initdb/postgres/psql: throwaway clusters of tests/service_postgres.rs and the PostgreSQL pass below
    openssl                # a throwaway CA and server certificate: TLS to the test PostgreSQL server (sslmode=verify-full)
    docker.io docker-compose debootstrap  # tests/service_compose.rs: the Dockerfile and docker-compose.yml built and run, on base images made from the Debian mirror
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    step "installing Debian packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    step "Debian packages present"
fi

# --- 2. venv with the independent readers --------------------------------------------------------
REQ="tests/independent/requirements.txt"
VENV="$ROOT/.venv"
stamp="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$stamp" ] \
    || ! "$VENV/bin/python" -c 'import kdmp_parser, volatility3, importlib.util as u; assert u.find_spec("memprocfs") and u.find_spec("leechcorepyc")' 2>/dev/null; then
    step "creating .venv from $REQ"
    # Debian's python3 (with python3-venv) is always there after step 1; another python3 on PATH
    # (pyenv) is used only if it can make a venv too.
    BASE_PY="/usr/bin/python3"
    if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
        BASE_PY="$(command -v python3)"
    fi
    "$BASE_PY" -m venv --clear "$VENV"
    "$VENV/bin/python" -m pip install -q -r "$REQ"
    echo "$stamp" > "$VENV/.requirements.sha256"
else
    step ".venv up to date"
fi
"$VENV/bin/python" -c 'import kdmp_parser, volatility3, importlib.util as u; assert u.find_spec("memprocfs") and u.find_spec("leechcorepyc")' || die ".venv is broken; delete it and run again"

# --- 3. Volatility symbols dir -------------------------------------------------------------------
CACHE="$ROOT/.cache"
SYMS="$CACHE/vol-symbols"
# The corpus ISFs are COPIED (2 MB), never linked: Volatility may rewrite a symbol file it fails to
# identify, and a write through a link lands in ../shared/corpus (as root, its read-only bits do
# not stop it). This happened once while the forge was built.
[ -L "$SYMS/windows/ntkrnlmp.pdb" ] && rm -f "$SYMS/windows/ntkrnlmp.pdb"
mkdir -p "$SYMS/windows/ntkrnlpa.pdb" "$SYMS/windows/ntkrnlmp.pdb" "$CACHE/vol-cache"
for isf in "$(cd "$CORPUS/isf/ntkrnlmp.pdb" && pwd)"/*.json.xz; do
    dest="$SYMS/windows/ntkrnlmp.pdb/$(basename "$isf")"
    [ -L "$dest" ] && rm -f "$dest"
    cmp -s "$isf" "$dest" 2>/dev/null || cp -f "$isf" "$dest"
done
if ! ls "$SYMS/windows/ntkrnlpa.pdb/"*.json.xz >/dev/null 2>&1; then
    step "making the XP SP3 PAE ISF with Volatility's pdbconv"
    tmp="$(mktemp -d "$CACHE/pdbconv.XXXXXX")"
    "$VENV/bin/python" -m volatility3.framework.symbols.windows.pdbconv \
        -f "$CORPUS/pdb/ntkrnlpa.pdb" -o "$tmp/ntkrnlpa.json" >/dev/null 2>&1 \
        || die "pdbconv failed on $CORPUS/pdb/ntkrnlpa.pdb"
    # pdbconv writes "database": "unknown.pdb" for this PDB; Volatility looks ISFs up by that name.
    name="$("$VENV/bin/python" - "$tmp/ntkrnlpa.json" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    isf = json.load(f)
pdb = isf["metadata"]["windows"]["pdb"]
pdb["database"] = "ntkrnlpa.pdb"
with open(path, "w") as f:
    json.dump(isf, f, sort_keys=True)
print(f'{pdb["GUID"].upper()}-{pdb["age"]}')
PY
)"
    xz -T1 -6 "$tmp/ntkrnlpa.json"
    mv "$tmp/ntkrnlpa.json.xz" "$SYMS/windows/ntkrnlpa.pdb/$name.json.xz"
    rm -rf "$tmp"
else
    step "XP ISF present: $(ls "$SYMS/windows/ntkrnlpa.pdb/")"
fi

export POOLTRIAGE_PYTHON="$VENV/bin/python"
export POOLTRIAGE_VOL="$VENV/bin/vol"
export POOLTRIAGE_VOL_SYMBOLS="$SYMS"
export POOLTRIAGE_VOL_CACHE="$CACHE/vol-cache"
export POOLTRIAGE_CORPUS="$(cd "$CORPUS" && pwd)"

# `scripts/test.sh --setup-only` stops here (bench/run.sh uses it), printing the variables to export.
if [ "${1:-}" = "--setup-only" ]; then
    for v in POOLTRIAGE_PYTHON POOLTRIAGE_VOL POOLTRIAGE_VOL_SYMBOLS POOLTRIAGE_VOL_CACHE POOLTRIAGE_CORPUS; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done
    exit 0
fi

# --- 3b. docker for tests/service_compose.rs ------------------------------------------------------
# The test builds the Dockerfile and starts docker-compose.yml on Debian's dockerd, with base
# images made from the Debian mirror (Docker Hub is out of reach here). scripts/docker-test-images.sh
# starts the daemon and makes them (cached), in the background while cargo builds; it is waited
# for before the tests.
export POOLTRIAGE_DOCKER=/usr/bin/docker POOLTRIAGE_COMPOSE=docker-compose \
    POOLTRIAGE_RUNTIME_IMAGE=pooltriage-test/debian:bookworm \
    POOLTRIAGE_POSTGRES_IMAGE=pooltriage-test/postgres:bookworm
step "docker daemon and base images, in the background (log: .cache/docker-images.log)"
scripts/docker-test-images.sh >"$CACHE/docker-images.log" 2>&1 &
docker_images=$!

# --- 4. build and test ---------------------------------------------------------------------------
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || die "cargo not found (install the Rust toolchain with rustup)"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    step "adding the rustfmt and clippy components"
    rustup component add rustfmt clippy >/dev/null || die "rustfmt and clippy are needed (rustup component add rustfmt clippy)"
fi
step "cargo fmt --all -- --check"
cargo fmt --all -- --check || die "the tree is not formatted: run cargo fmt --all"
step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step "cargo build --workspace --bins"
cargo build --workspace --bins
wait "$docker_images" || { tail -n 20 "$CACHE/docker-images.log" >&2; step "docker images FAILED: service_compose will fail"; }
step "cargo test --workspace --no-fail-fast"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The service suites a second time on PostgreSQL (README "Scale-out with PostgreSQL"): the
# harness starts a throwaway cluster per test binary (tests/independent/postgres.rs) and gives
# each data directory its own database. Skipped here, because they make tokens or read the
# database without the harness (SQLite file): service_api's tenants test and service_search's
# backfill test. tokens_cli and service_browser do not go through the harness at all.
step "service suites on PostgreSQL (POOLTRIAGE_TEST_DATABASE=postgres)"
# `--workspace` as above, not `-p pooltriage-e2e`: the same feature set, so the test binaries
# of the first pass are reused instead of built again.
POOLTRIAGE_TEST_DATABASE=postgres cargo test --workspace --no-fail-fast \
    --test service_api --test service_auth --test service_upload --test service_search \
    --test service_webhooks --test service_retention --test service_pages --test service_symbols \
    --test service_progress --test service_upload_csrf --test service_vendor_symbols --test service_problems \
    -- --skip tenants_get_their_own_id_for_the_same_content_and_share_the_analysis \
    --skip reports_are_backfilled_at_start 2>&1 | tee -a "$log"
pg_status=${PIPESTATUS[0]}
[ "$status" -ne 0 ] || status=$pg_status
step "tests finished"
if [ -n "${POOLTRIAGE_FUZZ_SECONDS:-}" ]; then
    step "fuzzing every target ${POOLTRIAGE_FUZZ_SECONDS}s (fuzz/run.sh)"
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    fuzz/run.sh "$POOLTRIAGE_FUZZ_SECONDS" || status=1
fi
set -e
# One closing line over every test binary (cargo's own last lines are the doc-tests' counts).
awk '/^test result:/ {
        for (i = 2; i <= NF; i++) {
            if ($i ~ /^passed;?$/) p += $(i - 1)
            if ($i ~ /^failed;?$/) f += $(i - 1)
            if ($i ~ /^ignored;?$/) s += $(i - 1)
        }
    }
    END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
