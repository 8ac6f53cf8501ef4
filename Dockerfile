# syntax=docker/dockerfile:1
# Centinela in a container: the app and its HTTP API on one port ($PORT, 8501), the database, models,
# imports and backups in the /data volume, run as an unprivileged user.
#
#   docker build -t centinela .          (or: podman build / buildah build --format docker)
#   docker run -p 8501:8501 -v centinela-data:/data -e CENTINELA_ADMIN_PASSWORD=... centinela
#
# Stage 1 makes a wheel of every requirement and of Centinela itself. It takes what wheelhouse/
# already holds (filled beforehand with `make wheelhouse`, which is how the image builds where no
# registry is reachable: add `--build-arg PIP_NO_INDEX=1`) and fetches the rest from the registry.
# Stage 2 installs from those wheels only, so it needs no network and no compiler.
FROM python:3.11-slim AS wheels
ARG PIP_NO_INDEX=
ENV PIP_NO_INDEX=${PIP_NO_INDEX} PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY wheelhouse/ /wheelhouse/
COPY requirements.txt pyproject.toml README.md ./
COPY api/ api/
COPY application/ application/
COPY cli/ cli/
COPY dashboard/ dashboard/
COPY data/ data/
COPY detectors/ detectors/
COPY integrations/ integrations/
COPY scaleout/ scaleout/
COPY serve.py ./
RUN pip wheel --find-links /wheelhouse --wheel-dir /wheelhouse -r requirements.txt \
    && pip wheel --find-links /wheelhouse --wheel-dir /wheelhouse --no-deps . \
    && cp requirements.txt /wheelhouse/

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CENTINELA_DB=/data/centinela.duckdb \
    HOME=/home/centinela \
    HOST=0.0.0.0 \
    PORT=8501
# A fixed uid, so that a volume prepared on the host (`chown 10001 DIR`) is writable by the app.
# libgomp1: LightGBM's OpenMP runtime (its wheel does not bundle one; the default learned model).
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home --home-dir /home/centinela centinela \
    && mkdir -p /data && chown centinela /data
# The wheels are mounted for this one step, not copied: they never become a layer of the image.
RUN --mount=type=bind,from=wheels,source=/wheelhouse,target=/wheelhouse \
    pip install --no-index --find-links /wheelhouse -r /wheelhouse/requirements.txt centinela
# The pages' entry points and Streamlit's production config (headless, no file watcher, no
# run-on-save) from the working directory; the packages come from the installed wheel.
WORKDIR /app
COPY app.py serve.py ./
COPY pages/ pages/
COPY .streamlit/config.toml .streamlit/
USER centinela
VOLUME /data
EXPOSE 8501

# The health check asks the loopback address: with HOST set to one other address, change it too.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/api/v1/health', timeout=4)"
# First start: the first admin from $CENTINELA_ADMIN_PASSWORD (the log says how when it is missing),
# then one process serves the pages and the API (serve.py); uvicorn sets TCP_NODELAY on its sockets.
# The bind address and port come from $HOST and $PORT (`docker run -e PORT=9000 -p 9000:9000 ...`).
CMD ["sh", "-c", "centinela users first-admin && exec uvicorn serve:app --host \"$HOST\" --port \"$PORT\""]
