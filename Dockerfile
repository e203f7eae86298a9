# The operator image: the videojob package (without extras) and its `videojob-operator` entry point.
# Build from the repository root: docker build -t videojob-operator:dev .   (or: make docker-build)
# The transcoder image (FFmpeg) is transcoder-image/Dockerfile.

FROM python:3.11-slim AS build
WORKDIR /src
# pyproject's readme is part of the package metadata.
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed unprivileged user (the uid distroless images call nonroot), matching the chart's runAsUser.
RUN groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin nonroot
COPY --from=build /wheels/ /tmp/wheels/
# No extras: the operator needs neither speech-to-text nor test tools.
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels
USER 65532:65532
# /metrics and /healthz (VIDEOJOB_METRICS_PORT).
EXPOSE 8080
ENTRYPOINT ["videojob-operator"]
