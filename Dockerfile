# Centinela in a container: the app and its HTTP API on port 8501, the database in the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CENTINELA_DB=/data/centinela.duckdb \
    HOST=0.0.0.0 \
    PORT=8501

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
RUN pip install --no-deps -e . \
    && useradd --create-home centinela \
    && mkdir -p /data && chown centinela /data
USER centinela
VOLUME /data
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/api/v1/health')"
# One process serves the pages and the API (serve.py); uvicorn sets TCP_NODELAY on its sockets.
# Production defaults (headless, no file watcher, no run-on-save) come from .streamlit/config.toml;
# the bind address and port from $HOST and $PORT (`docker run -e PORT=9000 -p 9000:9000 ...`).
CMD ["sh", "-c", "exec uvicorn serve:app --host \"$HOST\" --port \"$PORT\""]
