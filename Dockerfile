# syntax=docker/dockerfile:1
# Build:  docker build -t grouped-users .
# Run:    docker run -p 8000:8000 -v grouped-users-data:/data grouped-users

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY app ./app
RUN /opt/venv/bin/pip install --no-deps .

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
# serve applies pending migrations before it listens.
CMD ["grouped-users", "serve", "--host", "0.0.0.0", "--port", "8000"]
