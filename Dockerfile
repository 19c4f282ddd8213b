# One image for every NeutroWatch service; the command picks it (docker-compose.yml):
#   neutrowatch up --no-up-monitor   ingest (MLLP 2575, HTTP 8080: FHIR, API, /metrics)
#   neutrowatch monitor              a detection worker (health and /metrics on NEUTROWATCH_MONITOR_HTTP_PORT)
#   neutrowatch notify               alert delivery (HTTP 8080: acks, silences, /metrics)
#   neutrowatch topics create        one-shot topic creation
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY services ./services
COPY schemas ./schemas
COPY config ./config
RUN pip install --no-cache-dir -e . \
 && useradd --system --uid 10001 neutrowatch
USER neutrowatch
ENV NEUTROWATCH_BIND_HOST=0.0.0.0 \
    NEUTROWATCH_SCHEMAS_DIR=/app/schemas \
    HEALTHCHECK_URL=http://127.0.0.1:8080/readyz
EXPOSE 2575 8080 8081
# /readyz answers 200 only when every check passes; set HEALTHCHECK_URL for the monitor's port.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request as u; sys.exit(u.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["neutrowatch", "up"]
