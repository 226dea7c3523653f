# CaseChain Hub: one image for the API (`hub serve --role api`) and the workers (`hub worker`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HUB_CONTRACTS_DIR=/app/contracts \
    HUB_LOG_FORMAT=json

# Pango and a font for the case report's PDF (WeasyPrint, docs/case-report.md)
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY contracts ./contracts
RUN pip install . && useradd --system --uid 10001 --home-dir /app hub && chown -R hub /app
USER hub

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["hub", "serve", "--host", "0.0.0.0", "--port", "8000"]
