#!/usr/bin/env bash
# After `docker compose up`: wait for the service to be ready, then check it against the deployed bundles
# (`carelens smoke`: health, readiness, models, a bad input refused, each model's answer = the bundle's own).
# Usage: scripts/container-smoke.sh [URL] [MODELS_DIR]   (API key: $CARELENS_API_KEY)
set -euo pipefail
URL="${1:-http://127.0.0.1:8000}"
MODELS="${2:-models}"
CL="${CARELENS:-carelens}"
command -v "$CL" >/dev/null || CL=.venv/bin/carelens
for _ in $(seq 1 60); do
  if python3 -c "import urllib.request; urllib.request.urlopen('$URL/ready', timeout=3)" 2>/dev/null; then break; fi
  sleep 2
done
exec "$CL" smoke "$URL" --models "$MODELS"
