# The release image: both halves of backup-operator in one, so one tag names one release.
#   - the streamer (default entry point): the `main` container of every backup and restore Pod,
#     which execs into the user's container;
#   - backup-gen (`command: [backup-gen]`): the controller Deployment of argo/, and the CLI.
# The project and its `generator` extra only (no `test` or `demo` extras: no moto or pytest).
#
#   docker build -t ghcr.io/backup-operator/backup-operator:0.1.0 .
#   docker run --rm ghcr.io/backup-operator/backup-operator:0.1.0 backup s3://bucket/key --pod P --container C -- …
#   docker run --rm --entrypoint backup-gen ghcr.io/backup-operator/backup-operator:0.1.0 --help
#
# Runs as a non-root user and needs no writable path on its root filesystem: bytecode is
# compiled at build time, and nothing is staged on disk. Mount an emptyDir where the Pod wants
# files written (`--outputs /tmp/outputs`, or /tmp for a kubeconfig with inline credentials).
#
# Not a Docker HEALTHCHECK: the streamer is a one-shot command, and Kubernetes ignores the
# instruction (the controller Deployment has liveness and readiness probes instead).
# checkov:skip=CKV_DOCKER_2: a one-shot command and a Kubernetes Deployment; probes are in argo/controller.yaml

# One base for both stages, so the venv's interpreter path is valid in the final one.
FROM python:3.11-slim-bookworm AS base

FROM base AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/backup-operator
WORKDIR /src
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY generator ./generator
# The dependencies ship binary wheels (isal, zlib-ng, pyrage, pydantic-core), so no compiler is
# needed; then precompile everything, checked by hash rather than by mtime (which COPY need not
# keep), so a read-only root filesystem never needs a __pycache__ write. Both entry points must
# start, or the build fails.
RUN /opt/backup-operator/bin/pip install --no-compile ".[generator]" \
 && /opt/backup-operator/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/backup-operator \
 && /opt/backup-operator/bin/streamer --version \
 && /opt/backup-operator/bin/backup-gen --version

FROM base
LABEL org.opencontainers.image.title="backup-operator" \
      org.opencontainers.image.description="Streams a command's output through gzip and age into S3, and back; and the controller that runs it with Argo Workflows" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/backup-operator /opt/backup-operator
ENV PATH=/opt/backup-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A fixed numeric user, so `runAsNonRoot: true` can verify it without a passwd lookup.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["streamer"]
CMD ["--help"]
