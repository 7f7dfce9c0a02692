# syntax=docker/dockerfile:1
# wacdc worker image (Railway: deploy/railway.toml; local stack: deploy/docker-compose.yml).
#
#   docker build -t wacdc .
#   docker run --rm -e WACDC_SOURCE_URL=... -e WACDC_TARGET_URL=... -p 9108:9108 wacdc
#
# Dependencies come only from requirements.lock (pinned, hash-checked; regenerate with
#   pip-compile --generate-hashes --strip-extras --output-file=requirements.lock pyproject.toml).

# --- build: a virtualenv with the locked dependencies and wacdc ------------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

WORKDIR /src
# Own layer before any source: rebuilt only when requirements.lock changes.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# A C compiler for wacdc's own extension (MySQL's binary JSON, src/wacdc/source/_jsonbinary.c);
# build stage only: the runtime stage copies the built virtualenv.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

# The package itself, without dependencies (all of them came from the lock above).
# pyproject's [tool.setuptools.data-files] installs config/ to <venv>/share/wacdc/config,
# which config_dir() (src/wacdc/schema/profile.py) finds as sys.prefix/share/wacdc/config.
COPY pyproject.toml README.md ./
COPY config/ config/
COPY src/ src/
RUN pip install --no-deps . \
 && test -f /opt/venv/share/wacdc/config/profiles/prisma.toml \
 && python -c "from wacdc.source import jsonbinary; assert jsonbinary.COMPILED" \
 && pip check

# --- runtime ----------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

RUN groupadd --system --gid 10001 wacdc \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/wacdc \
    --shell /usr/sbin/nologin wacdc

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WACDC_LOG_FORMAT=json

USER 10001:10001
WORKDIR /home/wacdc

# /metrics, /healthz, /status: WACDC_METRICS_PORT, else PORT (Railway sets it), else 9108.
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${WACDC_METRICS_PORT:-${PORT:-9108}}/healthz', timeout=4)" || exit 1

# SIGTERM (docker stop, a Railway redeploy): wacdc finishes the chunk/batch and exits 0.
CMD ["wacdc", "run"]
