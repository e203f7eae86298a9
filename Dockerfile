# The operator image: the videojob package (without extras) and its `videojob-operator` entry point.
# Build from the repository root: docker build -t videojob-operator:dev .   (or: make docker-build)
# The transcoder image (FFmpeg) is transcoder-image/Dockerfile. `make images` builds both here without a registry
# (hack/build-images.sh: a Debian base made with debootstrap, passed as BASE_IMAGE).

# Debian bookworm's own Python 3.11, like the transcoder image. Override BASE_IMAGE with a digest
# (debian:bookworm-slim@sha256:...) for reproducible builds.
ARG BASE_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# pyproject's readme is part of the package metadata.
COPY pyproject.toml README.md ./
COPY operator/ operator/
# No extras: the operator needs neither speech-to-text nor test tools. The optional secret `ca-bundle` is a CA
# bundle for pip, for builds behind a TLS-intercepting proxy (docker build --secret id=ca-bundle,src=FILE).
RUN --mount=type=secret,id=ca-bundle \
    python3 -m venv /opt/videojob \
 && if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && /opt/videojob/bin/pip install --no-cache-dir --disable-pip-version-check /src \
 && /opt/videojob/bin/python -m compileall -q /opt/videojob/lib

# ---------------------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime

# python3 here is the same interpreter the venv was built with (same base image).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/videojob /opt/videojob

# A fixed unprivileged user (the uid distroless images call nonroot), matching the chart's runAsUser. Numeric in
# USER, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin nonroot

# Read-only root filesystem: the chart mounts an emptyDir at /tmp, the only place anything is written.
ENV PATH=/opt/videojob/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 65532:65532
WORKDIR /tmp
# /metrics and /healthz (VIDEOJOB_METRICS_PORT).
EXPOSE 8080
ENTRYPOINT ["videojob-operator"]
