# pooltriage service image: `docker build -t pooltriage .` (README "Scale-out with PostgreSQL").
# Not built in this repository's CI (no docker daemon there); tests/service_postgres.rs checks
# that the CMD below uses only flags `pooltriage serve` accepts.
#
# Stage 1: the release binary. Everything it serves (templates, CSS/JS, migrations, OpenAPI
# document) is compiled into it, so the runtime stage needs no files beside it.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pooltriage \
    && cp target/release/pooltriage /usr/local/bin/pooltriage

# Stage 2: Debian slim with the binary. util-linux (essential in Debian) provides `setpriv` and
# `prlimit`, with which the service runs and bounds each analysis child; ca-certificates for
# the symbol server downloads.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin pooltriage \
    && mkdir -p /data && chown pooltriage:pooltriage /data
COPY --from=build /usr/local/bin/pooltriage /usr/local/bin/pooltriage
USER pooltriage
# Also read by `pooltriage tokens ...` run in the container (`docker compose run`).
ENV POOLTRIAGE_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pooltriage"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/data"]
