# syntax=docker/dockerfile:1.7
# One image for every process of the service:
#   API:        the default command, `exports-api` (gunicorn; binds $EXPORTS_BIND,
#               default 0.0.0.0:8000)
#   poller:     same image, command `exports-poller` (run N copies); its health check is
#               `exports-poller --check` (set it in the task definition / compose file)
#   migrations: same image, one-off task before a deploy: `exports-admin migrate`
#               (or `alembic upgrade head`: the working directory holds alembic.ini)
# Configuration is environment variables only (README, Configuration).
#
# Two stages: the builder turns the project and its dependencies into wheels; the runtime
# installs them (not editable: docs/decisions.md #16) and carries no build context, pip
# cache or source tree. sql/, migrations/ and alembic.ini are data files of the wheel,
# installed under /usr/local/share/exports (setup.py; app.platform.settings.PROJECT_ROOT).
# scripts/docker-mirror repeats these steps without Docker.

# An exact tag (bump deliberately); pin by digest in your registry mirror if you need
# byte-identical rebuilds: python:3.11.13-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- builder: wheels for the project and every dependency ---------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Dependencies first, in their own layer: rebuilt only when setup.cfg changes.
COPY setup.cfg pyproject.toml README.md ./
RUN python -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); print(c['options']['install_requires'])" \
        > /tmp/requirements.txt \
    && pip wheel --wheel-dir /wheels -r /tmp/requirements.txt

# The project's own wheel (code + sql/ + migrations/ + alembic.ini as data files).
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- runtime --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EXPORTS_LOG_FORMAT=json

RUN useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /usr/local/share/exports --shell /usr/sbin/nologin exports

# Install from the builder's wheels only (no index, nothing downloaded here); the wheels
# are mounted for this step, not copied, so they add nothing to the image. var/ is the
# only folder the service may write (local storage/mail when not on S3/SES).
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels exports \
    && mkdir -p /usr/local/share/exports/var \
    && chown exports:exports /usr/local/share/exports/var

WORKDIR /usr/local/share/exports
USER exports
EXPOSE 8000 9108

# For `docker run` of the API (ECS uses the task definition's healthCheck instead). No
# curl in the slim image: Python's urllib does it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]

# Both processes handle SIGTERM themselves (graceful stop); exec form keeps the Python
# process as PID 1 (or the child of ECS's init when initProcessEnabled) so it gets the signal.
STOPSIGNAL SIGTERM
CMD ["exports-api"]
