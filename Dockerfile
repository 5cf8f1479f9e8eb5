# The module engine serving one module folder. Build: docker build -t module-engine .
# Run:   docker run -p 8080:8080 -e ENGINE_MODULE=/app/modules/kinto module-engine
# Kubernetes manifests: deploy/kubernetes (docs/operations.md). tests/test_deploy.py checks
# this file against the README's environment table and the Deployment.
ARG PYTHON_IMAGE=python:3.11-slim

# uv as the official static binary of a pinned release (the one that wrote uv.lock): nothing is
# installed with pip, and the binary stays in the build stage, out of the image that runs.
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /bin/uv
# the image's own Python (the runtime stage has the same one); bytecode compiled here, since
# the running container's root filesystem is read-only
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
WORKDIR /app
# dependencies first, exactly as locked (a layer that changes only with the lock file)
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --extra s3 --extra gcs --no-install-project
# then the engine itself, as a wheel (with its schemas) rather than a link to the sources
COPY README.md ./
COPY engine ./engine
COPY schemas ./schemas
RUN uv sync --frozen --no-dev --extra s3 --extra gcs --no-editable

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH \
    PORT=8080 \
    ENGINE_HOST=0.0.0.0 \
    ENGINE_MODULE=/app/modules/kinto
WORKDIR /app
# the default local backup folder (ENGINE_BACKUP_DIR, ./backups) is the engine user's, so a
# plain `docker run` can back up to it; under Kubernetes the root filesystem is read-only and
# only object storage is allowed (deploy/kubernetes/configmap.yaml)
RUN groupadd --system --gid 10001 engine \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home engine \
    && install --directory --owner 10001 --group 10001 /app/backups
COPY --from=build /app/.venv /app/.venv
COPY modules ./modules

USER 10001:10001
EXPOSE 8080
CMD ["engine", "serve"]
