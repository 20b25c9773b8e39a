# The vtrans sandbox service. On its own it keeps its jobs in an SQLite file on the /data volume;
# with VTRANS_STORE=postgresql://… (see docker-compose.yml) any number of replicas share them.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir '.[server,postgresql]' \
    && useradd --system --uid 10001 vtrans \
    && mkdir /data && chown vtrans /data
USER vtrans
VOLUME /data
ENV VTRANS_HOST=0.0.0.0 VTRANS_PORT=8000 VTRANS_DB=/data/vtrans.db
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["vtrans", "serve"]
