# One image for every NeutroWatch service; the command picks the service.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY schemas ./schemas
COPY config ./config
RUN pip install --no-cache-dir -e . \
 && useradd --system --uid 10001 neutrowatch
USER neutrowatch
ENV NEUTROWATCH_BIND_HOST=0.0.0.0 \
    NEUTROWATCH_SCHEMAS_DIR=/app/schemas
EXPOSE 2575 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2).status == 200 else 1)"
CMD ["neutrowatch", "up"]
