# syntax=docker/dockerfile:1

# pixmill's container image: one binary, run as `gateway`, `worker` or `standalone`.
#
#   docker build -t pixmill .                      (libjpeg-turbo codecs: FEATURES=turbo)
#   docker build --build-arg FEATURES= -t pixmill .  (pure-Rust codecs, no cmake or nasm)
#
# The builder compiles the dependencies against placeholder sources first, so that layer
# is reused until a manifest or Cargo.lock changes, then compiles pixmill itself. The
# runtime stage holds the binary, CA certificates and OpenSSL only.

FROM rust:1-slim-bookworm AS builder

# Cargo features of the pixmill package (space- or comma-separated), empty for none. The
# image is built with `turbo` (libjpeg-turbo, see the README's "Codecs and speed").
ARG FEATURES="turbo"

# -e: a failing step fails the whole RUN, though the steps are joined with `;`.
SHELL ["/bin/bash", "-eu", "-o", "pipefail", "-c"]

# OpenSSL headers for native-tls; the `turbo` feature builds a C codec library, which
# needs cmake, make and nasm besides the compiler the image already has.
# Versions are not pinned: Debian's archive drops superseded versions, so a pinned build
# would break at the next security update.
# hadolint ignore=DL3008
RUN packages=(pkg-config libssl-dev); \
    if [[ " ${FEATURES//,/ } " == *" turbo "* ]]; then packages+=(cmake make nasm); fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends "${packages[@]}"; \
    rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies: the manifests and placeholder crate roots. A new workspace member, build
# script or explicitly declared [[bin]]/[[test]] target needs its manifest or placeholder
# here as well (and its sources in the `find` below).
COPY Cargo.toml Cargo.lock ./
COPY actors/Cargo.toml actors/
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    mkdir -p src actors/src; \
    echo 'fn main() {}' > src/main.rs; \
    touch src/lib.rs actors/src/lib.rs; \
    cargo build --release --locked --bin pixmill --features "${FEATURES}"; \
    rm -rf src actors/src

# pixmill itself. COPY keeps the sources' modification times, which can be older than the
# placeholders', so touch them to make cargo rebuild the two crates.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    find src actors/src -name '*.rs' -exec touch {} +; \
    cargo build --release --locked --bin pixmill --features "${FEATURES}"; \
    install -D -m 0755 target/release/pixmill /out/pixmill

FROM debian:bookworm-slim AS runtime

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric id, so orchestrators can check runAsNonRoot and volumes can be chowned.
RUN groupadd --system --gid 10001 pixmill \
    && useradd --system --no-log-init --uid 10001 --gid pixmill \
        --home-dir /var/lib/pixmill --shell /usr/sbin/nologin pixmill \
    && install -d -o pixmill -g pixmill -m 0750 /var/lib/pixmill

COPY --from=builder /out/pixmill /usr/local/bin/pixmill

# Container defaults; every PIXMILL_* setting can be overridden at run time. Relative data
# paths (standalone mode's embedded stores) land in the volume below.
ENV PIXMILL_SERVER__ADDR=0.0.0.0:8080 \
    PIXMILL_WORKER__ADMIN_ADDR=0.0.0.0:9090 \
    PIXMILL_LOG__FORMAT=json

USER 10001:10001
WORKDIR /var/lib/pixmill
VOLUME ["/var/lib/pixmill"]

# 8080: the HTTP API (gateway, standalone). 9090: the worker's health and metrics.
EXPOSE 8080 9090

# No HEALTHCHECK here: the URL differs per subcommand. Orchestrators run
# `pixmill healthcheck --url http://127.0.0.1:8080/readyz` (gateway) or :9090 (worker).
ENTRYPOINT ["pixmill"]
CMD ["standalone"]
