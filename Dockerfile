# The streamer image: the data plane that runs as the `main` container of every backup and
# restore Pod and execs into the user's container. It holds the project and its core
# dependencies only (not the `generator`/`test` extras: no hera, moto or pytest).
#
#   docker build -t ghcr.io/backup-operator/backup-operator:0.1.0 .
#   docker run --rm ghcr.io/backup-operator/backup-operator:0.1.0 backup s3://bucket/key --pod P --container C -- …
#
# Runs as a non-root user and needs no writable path on its root filesystem: bytecode is
# compiled at build time, and nothing is staged on disk. Mount an emptyDir where the Pod wants
# files written (`--outputs /tmp/outputs`, or /tmp for a kubeconfig with inline credentials).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# Extras to install: none for the streamer image; "[generator]" for an image that also runs
# backup-gen (docker build --build-arg EXTRAS=[generator] .).
ARG EXTRAS=""

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/streamer
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY generator ./generator
# The core dependencies and EXTRAS (isal, zlib-ng and pyrage ship binary wheels, so no compiler is
# needed); then precompile everything, checked by hash rather than by mtime (which COPY need
# not keep), so a read-only root filesystem never needs a __pycache__ write.
ARG EXTRAS
RUN /opt/streamer/bin/pip install --no-compile ".${EXTRAS}" \
 && /opt/streamer/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/streamer \
 && /opt/streamer/bin/streamer --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="backup-operator streamer" \
      org.opencontainers.image.description="Streams a command's output through gzip and age into S3, and back" \
      org.opencontainers.image.licenses="Apache-2.0"
# The same base image as the build stage, so the venv's interpreter path is valid here.
COPY --from=build /opt/streamer /opt/streamer
ENV PATH=/opt/streamer/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A fixed numeric user, so `runAsNonRoot: true` can verify it without a passwd lookup.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["streamer"]
CMD ["--help"]
