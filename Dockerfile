# One image for every process of the service:
#   API:        the default command, `exports-api` (gunicorn; binds $EXPORTS_BIND,
#               default 0.0.0.0:8000)
#   poller:     same image, command `exports-poller` (run N copies)
#   migrations: same image, one-off task before a deploy: `alembic upgrade head`
#               (or `exports-admin migrate`)
# Configuration is environment variables only (see README / docs).
# scripts/docker-mirror repeats the install steps below without Docker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /srv/exports --shell /usr/sbin/nologin exports

WORKDIR /srv/exports

# Dependencies first, in their own layer: it is rebuilt only when setup.cfg changes.
# (Installing the package itself needs the source, so the requirement list is read
# straight from setup.cfg here.)
COPY setup.cfg pyproject.toml README.md ./
RUN python -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); print(c['options']['install_requires'])" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code. Installed EDITABLE on purpose: the code finds sql/, migrations/ and
# alembic.ini relative to the source tree, so it runs from /srv/exports.
COPY . .
RUN pip install -e . \
    && mkdir -p var \
    && chown exports:exports var

USER exports
EXPOSE 8000
# Both processes handle SIGTERM themselves (graceful stop); exec form keeps the
# Python process as PID 1 so it receives the signal.
STOPSIGNAL SIGTERM
CMD ["exports-api"]
