#!/usr/bin/env bash
# Builds the Dockerfile as its users do, builder stage included (the release binary compiled in
# docker), and checks that the image's binary runs. Not part of CI: the release build alone takes
# many minutes on 2 cores, so tests/service_compose.rs gives the Dockerfile a prebuilt binary
# instead (BINARY_FROM). Prints the build's wall-clock time: 27m23s with --local on 2 cores shared
# with other builds (load around 11), 2026-12-06.
#
#   scripts/docker-build-check.sh           the official base images (needs Docker Hub)
#   scripts/docker-build-check.sh --local   base images made here: scripts/docker-test-images.sh's
#                                           Debian, and tests/docker/rust on it (Debian's gcc,
#                                           rustup's stable toolchain, this machine's CA bundle)
#
# POOLTRIAGE_DOCKER names the docker CLI (default `docker`); it must build with BuildKit (Debian's
# /usr/bin/docker does; a newer CLI needs its buildx plugin).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER="${POOLTRIAGE_DOCKER:-docker}"
TAG="pooltriage:build-check"
export DOCKER_BUILDKIT=1
args=()
if [ "${1:-}" = "--local" ]; then
    "$ROOT/scripts/docker-test-images.sh"
    ctx="$(mktemp -d)"
    trap 'rm -rf "$ctx"' EXIT
    cp "$ROOT/tests/docker/rust/Dockerfile" /etc/ssl/certs/ca-certificates.crt "$ctx/"
    "$DOCKER" build -q --build-arg BASE_IMAGE=pooltriage-test/debian:bookworm \
        -t pooltriage-test/rust:bookworm "$ctx" >/dev/null
    args=(--build-arg RUST_IMAGE=pooltriage-test/rust:bookworm
          --build-arg RUNTIME_IMAGE=pooltriage-test/debian:bookworm)
fi
start=$SECONDS
"$DOCKER" build "${args[@]}" -t "$TAG" "$ROOT"
elapsed=$((SECONDS - start))
"$DOCKER" run --rm "$TAG" --version
"$DOCKER" run --rm "$TAG" serve --help >/dev/null
printf 'docker build with the builder stage: %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
