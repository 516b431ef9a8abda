# siro-writeback: one image for every process of the service (docker-compose.yml
# runs it as the Celery worker, Celery beat and the webhook app). No secret is
# baked in: tokens, the database URL and the webhook secret arrive at run time
# as files under /run/secrets (the NAME_FILE variables, DESIGN §3).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The unprivileged user the service runs as. A fixed numeric id, so that secret
# files on the host can be made readable to it and `runAsNonRoot` checks can
# verify it. Its home holds the beat schedule (a volume in docker-compose.yml:
# a fresh named volume takes this directory's ownership).
RUN groupadd --system --gid 10001 writeback \
    && useradd --system --uid 10001 --gid writeback --home-dir /var/lib/writeback \
        --no-create-home --shell /usr/sbin/nologin writeback \
    && install -d -o writeback -g writeback -m 0750 /var/lib/writeback

WORKDIR /src

# Dependencies first, read from pyproject.toml alone: this layer (the bulk of
# the image) is rebuilt only when the dependency lists change, not on every
# source edit.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the package itself (a regular, non-editable install of the copied tree;
# its dependencies are already satisfied). The in-tree build leftovers go in
# the same layer.
COPY worker ./worker
COPY connectors ./connectors
COPY simulators ./simulators
RUN pip install --no-cache-dir '.[postgres]' \
    && rm -rf build ./*.egg-info

# Run from the service's own directory, not from /src: the installed package is
# what gets imported, and relative defaults (a SQLite ledger) land somewhere
# writable.
WORKDIR /var/lib/writeback
USER 10001:10001

EXPOSE 8000

# Celery handles SIGTERM itself (warm shutdown: running tasks finish), so it
# runs as PID 1 with no init wrapper. docker-compose.yml overrides this for
# beat and the webhook.
CMD ["celery", "-A", "worker", "worker", "--loglevel", "INFO"]
