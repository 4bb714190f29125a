# Build:  docker build -t grouped-users .
# Run:    docker run -p 8000:8000 -v grouped-users-data:/data grouped-users
# Behind a package mirror or a TLS-inspecting proxy (docs/docker.md), for the build only:
#   --build-arg PIP_INDEX_URL=https://mirror.example/simple --build-arg PIP_TRUSTED_HOST=...
#   --build-arg PIP_CA_BUNDLE="$(cat corporate-ca.pem)"
# No "# syntax=" line: BuildKit would fetch that frontend from Docker Hub before building.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Declared without a value: unset, pip uses its defaults. Only this stage sees
# them; the image that runs carries none of them.
ARG PIP_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_CA_BUNDLE
WORKDIR /src
# pip trusts the given CA besides the system's; a proxy that re-signs TLS
# signs every host with it.
RUN python -m venv /opt/venv \
    && if [ -n "${PIP_CA_BUNDLE:-}" ]; then \
        { cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null; printf '%s\n' "$PIP_CA_BUNDLE"; } \
            >/src/pip-ca.pem; \
    fi
COPY requirements.lock ./
RUN env ${PIP_CA_BUNDLE:+PIP_CERT=/src/pip-ca.pem} \
    /opt/venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
# The build backend (setuptools) is fetched from the index too, hence the same settings.
RUN env ${PIP_CA_BUNDLE:+PIP_CERT=/src/pip-ca.pem} \
    /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim
# PYTHONPATH: the app runs from /srv/grouped-users, where alembic.ini and
# alembic/ stand beside it; the installed copy only provides the command.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv/grouped-users \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GROUPED_USERS_DATABASE_URL=sqlite+aiosqlite:////data/grouped-users.db \
    GROUPED_USERS_AUTH=required
RUN useradd --system --uid 10001 --home-dir /srv/grouped-users grouped-users \
    && mkdir -p /data /srv/grouped-users \
    && chown grouped-users /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv/grouped-users
COPY alembic.ini ./
COPY alembic ./alembic
COPY app ./app
USER 10001
VOLUME ["/data"]
EXPOSE 8000
# serve applies pending migrations before it listens, and logs what it applied.
CMD ["grouped-users", "serve", "--host", "0.0.0.0", "--port", "8000"]
