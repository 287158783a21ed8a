#!/usr/bin/env bash
# Makes the docker daemon and the base images tests/service_compose.rs needs, on a Debian machine
# that reaches the Debian mirror but not Docker Hub (scripts/test.sh runs it, as root, while
# cargo builds; its output goes to .cache/docker-images.log):
#
#   1. starts Debian's dockerd (package docker.io) unless a daemon already answers; its log is
#      .cache/dockerd.log;
#   2. pooltriage-test/debian:bookworm: `debootstrap --variant=minbase bookworm` from the
#      machine's Debian mirror, plus ca-certificates, imported with `docker import`. Made again
#      only when the recipe below changes (an image label holds its hash);
#   3. pooltriage-test/postgres:bookworm: tests/docker/postgres (Debian's postgresql on that
#      Debian), rebuilt by docker's own layer cache when its files change.
#
# The test passes them to docker-compose.yml as POOLTRIAGE_RUNTIME_IMAGE and
# POOLTRIAGE_POSTGRES_IMAGE (scripts/test.sh exports them); elsewhere the compose file's defaults
# are the official images.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER="${POOLTRIAGE_DOCKER:-docker}"
CACHE="$ROOT/.cache"
DEBIAN_IMAGE="pooltriage-test/debian:bookworm"
POSTGRES_IMAGE="pooltriage-test/postgres:bookworm"
export DOCKER_BUILDKIT=1

log() { printf '[docker-test-images %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
mkdir -p "$CACHE"

# --- 1. the daemon -------------------------------------------------------------------------------
if ! "$DOCKER" info >/dev/null 2>&1; then
    log "starting dockerd (log: $CACHE/dockerd.log)"
    # setsid: the daemon outlives this script and an interrupt of the test run.
    setsid dockerd >>"$CACHE/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 60); do
        "$DOCKER" info >/dev/null 2>&1 && break
        sleep 0.5
    done
    "$DOCKER" info >/dev/null 2>&1 || { log "dockerd did not answer within 30 s"; tail -n 20 "$CACHE/dockerd.log"; exit 1; }
fi

# --- 2. Debian from the mirror ---------------------------------------------------------------------
# The first Debian (not -security) URI apt is configured with; deb.debian.org otherwise.
mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }')"
[ -n "$mirror" ] || mirror="$(awk '/^deb / && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
debootstrap_args=(--variant=minbase --include=ca-certificates bookworm)
recipe_hash="$(printf '%s' "${debootstrap_args[*]}" | sha256sum | cut -c1-16)"
have="$("$DOCKER" image inspect -f '{{index .Config.Labels "org.pooltriage.recipe"}}' "$DEBIAN_IMAGE" 2>/dev/null || true)"
if [ "$have" != "$recipe_hash" ]; then
    log "debootstrap ${debootstrap_args[*]} from $mirror"
    rootfs="$(mktemp -d "$CACHE/debootstrap.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap "${debootstrap_args[@]}" "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
        || { log "debootstrap failed"; tail -n 20 "$CACHE/debootstrap.log"; exit 1; }
    rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
    tar -C "$rootfs" -c . | "$DOCKER" import \
        --change "LABEL org.pooltriage.recipe=$recipe_hash" --change 'CMD ["bash"]' \
        - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
else
    log "$DEBIAN_IMAGE up to date"
fi

# --- 3. PostgreSQL on it ---------------------------------------------------------------------------
log "building $POSTGRES_IMAGE"
"$DOCKER" build -q --build-arg "BASE_IMAGE=$DEBIAN_IMAGE" -t "$POSTGRES_IMAGE" \
    "$ROOT/tests/docker/postgres" >/dev/null
log "done"
