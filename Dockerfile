# syntax=docker/dockerfile:1
# Multi-stage: dependencies (pyproject.toml, pinned by requirements.lock) and GraphiQL assets are built
# in their own stages; the runtime image runs as a non-root user.

FROM node:20-slim AS assets
WORKDIR /build/web
COPY web/package.json ./
RUN npm install --no-audit --no-fund --ignore-scripts --omit=dev

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Only the dependencies of pyproject.toml go into the venv (a layer that changes
# only with them), at the versions requirements.lock pins: a constraints file, so
# the dev tools it also pins are not installed. The code runs from /app, where
# sql/ sits beside it.
COPY pyproject.toml README.md requirements.lock ./
RUN for d in api schema loaders permadmin permcore permauth permstore permbase; do mkdir -p $d && touch $d/__init__.py; done \
    && pip install -c requirements.lock . && pip uninstall -y permgraph

FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/venv/bin:$PATH ENVIRONMENT=prod
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin permgraph
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# the app reads sql/ and web/node_modules/ relative to the source tree; one
# folder per layer (README "Layout"); permdev/ (make run, seed, embedded
# servers) stays out of the image
COPY --chown=permgraph api ./api
COPY --chown=permgraph schema ./schema
COPY --chown=permgraph loaders ./loaders
COPY --chown=permgraph permadmin ./permadmin
COPY --chown=permgraph permcore ./permcore
COPY --chown=permgraph permauth ./permauth
COPY --chown=permgraph permstore ./permstore
COPY --chown=permgraph permbase ./permbase
COPY --chown=permgraph sql ./sql
COPY --from=assets --chown=permgraph /build/web/node_modules ./web/node_modules
USER permgraph
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
# WORKERS processes (default: the CPUs this process may run on; under a CPU quota
# set it to the quota), /metrics summed over them (api/serve.py)
CMD ["python", "-m", "api.serve", "--host", "0.0.0.0", "--port", "8000"]
