# The module engine serving one module folder. Build: docker build -t module-engine .
# Run:   docker run -p 8080:8080 -e ENGINE_MODULE=/app/modules/kinto module-engine
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    ENGINE_HOST=0.0.0.0 \
    ENGINE_MODULE=/app/modules/kinto

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY engine ./engine
COPY schemas ./schemas
COPY modules ./modules
RUN pip install --no-cache-dir ".[s3,gcs]" \
    && useradd --system --uid 10001 --home-dir /app engine

USER engine
EXPOSE 8080
CMD ["engine", "serve"]
