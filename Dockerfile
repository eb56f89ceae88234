# The container action's image: the orchestrator binary on Debian, with git,
# CA certificates, tini, and OpenTofu and Helm at pinned, checksummed versions.
#
#   docker build -t orchestrator-action .
#
# Build arguments:
#   RUST_IMAGE, DEBIAN_IMAGE   the builder and runtime base images
#   TOFU_VERSION, TOFU_SHA256  OpenTofu release and the sha256 of its
#                              linux_<arch>.tar.gz; TOFU_VERSION="" leaves it out
#   HELM_VERSION, HELM_SHA256  Helm release and the sha256 of its
#                              linux-<arch>.tar.gz; HELM_VERSION="" leaves it out
#   BINARY_FROM                `builder` (default) compiles the binary here;
#                              `context` takes an already built one from the
#                              build context at target/release/orchestrator
#                              (it must be built for the same Debian release)
#
# The checksums below are for linux/amd64. For another platform pass the
# checksums of that platform's archives.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG BINARY_FROM=builder

# --- the binary, compiled -----------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin orchestrator \
    && install -D -m 0755 target/release/orchestrator /out/orchestrator

# --- the binary, from the build context ----------------------------------------
FROM scratch AS context
COPY target/release/orchestrator /out/orchestrator

FROM ${BINARY_FROM} AS binary

# --- OpenTofu and Helm, each checked against its pinned sha256 -------------------
FROM ${DEBIAN_IMAGE} AS tools
ARG TARGETARCH=amd64
ARG TOFU_VERSION=1.10.6
ARG TOFU_SHA256=b6b46b4fd8dd0b96e624f2a2d5fbc4efae2fc0174529b37292775c847c2e7d2c
ARG HELM_VERSION=3.19.0
ARG HELM_SHA256=a7f81ce08007091b86d8bd696eb4d86b8d0f2e1b9f6c714be62f82f96a594496
RUN set -eu; \
    mkdir -p /tools; \
    if [ -z "${TOFU_VERSION}${HELM_VERSION}" ]; then exit 0; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    cd /tmp; \
    if [ -n "${TOFU_VERSION}" ]; then \
      curl -fsSL --retry 3 -o tofu.tar.gz \
        "https://github.com/opentofu/opentofu/releases/download/v${TOFU_VERSION}/tofu_${TOFU_VERSION}_linux_${TARGETARCH}.tar.gz"; \
      echo "${TOFU_SHA256}  tofu.tar.gz" | sha256sum -c -; \
      tar -xzf tofu.tar.gz -C /tools tofu; \
    fi; \
    if [ -n "${HELM_VERSION}" ]; then \
      curl -fsSL --retry 3 -o helm.tar.gz \
        "https://get.helm.sh/helm-v${HELM_VERSION}-linux-${TARGETARCH}.tar.gz"; \
      echo "${HELM_SHA256}  helm.tar.gz" | sha256sum -c -; \
      tar -xzf helm.tar.gz --strip-components=1 -C /tools "linux-${TARGETARCH}/helm"; \
    fi

# --- the image the action runs ------------------------------------------------
FROM ${DEBIAN_IMAGE} AS runtime
# ca-certificates: the GitHub API and https remotes (and a GHES private CA
# added to the system store); libssl3: libgit2's https transport; git:
# modules and charts that components fetch over git; tini: PID 1, which
# reaps the processes components leave behind and passes signals on to the
# orchestrator.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git libssl3 tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=tools /tools/ /usr/local/bin/
COPY --from=binary /out/orchestrator /usr/local/bin/orchestrator
LABEL org.opencontainers.image.title="orchestrator-action" \
      org.opencontainers.image.description="Deploys infrastructure components in dependency order, with the state kept in git" \
      org.opencontainers.image.licenses="MIT"
# No USER: the runner mounts the workspace owned by its own user and the
# action must run as root to write to it. No WORKDIR: the runner sets
# --workdir /github/workspace.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/orchestrator"]
