# syntax=docker/dockerfile:1
# ocimand container image. Targets:
#   runtime (default)   compile ocimand in BUILD_IMAGE, copy it into RUNTIME_IMAGE
#   runtime-prebuilt    copy a binary built outside (swift build -c release --static-swift-stdlib)
#                       from the build context: no Swift toolchain image needed (see deploy/README.md)
# The container listens on 0.0.0.0:8420, so ocimand refuses to start without a bearer token:
# mount it as a secret at /run/secrets/ocimand-token (or set OCIMAN_TOKEN). It drives the engine
# whose socket you mount, which is root-equivalent on that host: see deploy/README.md.

ARG BUILD_IMAGE=docker.io/library/swift:6.3.1-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd-dev libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
# Git settings for SwiftPM's dependency fetches (for example GIT_CONFIG_COUNT=1,
# GIT_CONFIG_KEY_0=url./mirror/.insteadOf, GIT_CONFIG_VALUE_0=https://github.com/ for an offline mirror).
# Unset unless passed with --build-arg.
ARG GIT_CONFIG_COUNT
ARG GIT_CONFIG_KEY_0
ARG GIT_CONFIG_VALUE_0
WORKDIR /src
COPY Package.swift openapi.yaml ./
COPY Plugins/ Plugins/
COPY Sources/ Sources/
COPY Tests/ Tests/
# The Swift runtime and Foundation are linked in (the runtime image needs no Swift); stripped: 110 MB → 70 MB.
RUN swift build -c release --product ocimand --static-swift-stdlib \
    && install -D -s -m 0755 "$(swift build -c release --show-bin-path)/ocimand" /out/ocimand

FROM ${RUNTIME_IMAGE} AS runtime-base
# Debian stable only takes security fixes, which an image rebuild should pick up: versions are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd12 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupadd --system --gid 10001 ocimand \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin ocimand \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/ociman
# OCIMAN_TOKEN_FILE is where `docker run --secret`, Compose and Kubernetes put the token (a path,
# not the token: hence the DL3064 ignore). Session leases live in OCIMAN_STATE_DIR: mount a volume
# there to keep them across container replacement. MALLOC_ARENA_MAX=1 keeps RSS flat under many
# threads (SPEC §9).
# hadolint ignore=DL3064
ENV OCIMAN_LISTEN=0.0.0.0:8420 \
    OCIMAN_STATE_DIR=/var/lib/ociman \
    OCIMAN_TOKEN_FILE=/run/secrets/ocimand-token \
    OCIMAN_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=1
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8420
# Probes /health on OCIMAN_LISTEN with the same token: no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/ocimand", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/ocimand"]

FROM runtime-base AS runtime-prebuilt
# Path of the prebuilt binary inside the build context (executable bits are kept).
ARG PREBUILT_BINARY=ocimand
COPY ${PREBUILT_BINARY} /usr/local/bin/ocimand

FROM runtime-base AS runtime
COPY --from=build /out/ocimand /usr/local/bin/ocimand
