# pooltriage service image: `docker build -t pooltriage .` (README "Scale-out with PostgreSQL").
# tests/service_compose.rs builds it through docker-compose.yml and runs two instances of it on
# one PostgreSQL database; tests/service_postgres.rs checks that the CMD below uses only flags
# `pooltriage serve` accepts. Needs BuildKit (the default of current Docker; with Debian's
# docker.io 20.10 set DOCKER_BUILDKIT=1): it builds only the stages the final image uses.
#
# Build arguments (the defaults are the official images; override them where those cannot be
# pulled, as the tests do with images made locally from the Debian mirror):
#   RUST_IMAGE     the toolchain of the builder stage (Debian bookworm based, like the runtime,
#                  so the binary links against the same glibc);
#   RUNTIME_IMAGE  the Debian bookworm the service runs on;
#   BINARY_FROM    where the binary comes from: `builder` (default) compiles it here in release
#                  mode; any other image name takes /usr/local/bin/pooltriage from that image
#                  instead (a binary already built for bookworm), which skips the builder stage
#                  entirely. The tests pass an image holding their own debug build, because
#                  compiling the release binary in the builder takes many minutes on 2 cores;
#                  scripts/docker-build-check.sh builds the builder stage itself.
ARG RUST_IMAGE=rust:1-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BINARY_FROM=builder

# Stage 1: the release binary. Everything it serves (templates, CSS/JS, migrations, OpenAPI
# document) is compiled into it, so the runtime stage needs no files beside it.
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pooltriage \
    && cp target/release/pooltriage /usr/local/bin/pooltriage

# The binary the runtime stage copies: the builder's, or a prebuilt one (BINARY_FROM above).
FROM ${BINARY_FROM} AS binary

# Stage 2: Debian with the binary. util-linux (essential in Debian) provides `setpriv` and
# `prlimit`, with which the service runs and bounds each analysis child; ca-certificates for
# the symbol server downloads (installed only when the base image lacks it, so a base that
# carries it builds without network access).
FROM ${RUNTIME_IMAGE}
RUN if ! dpkg-query -W -f='${Status}' ca-certificates 2>/dev/null | grep -q 'ok installed'; then \
        apt-get update \
        && apt-get install -y --no-install-recommends ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin pooltriage \
    && mkdir -p /data && chown pooltriage:pooltriage /data
COPY --from=binary /usr/local/bin/pooltriage /usr/local/bin/pooltriage
USER pooltriage
# Also read by `pooltriage tokens ...` run in the container (`docker compose run`).
ENV POOLTRIAGE_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pooltriage"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/data"]
