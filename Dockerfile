# The portal image (web, worker and migrate all run it). Build: docker compose build
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    PATH="/app/.venv/bin:$PATH"
RUN pip install --no-cache-dir uv && useradd --system --uid 10001 --home /app portal
WORKDIR /app

COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY alembic.ini ./
COPY portal ./portal
COPY worker ./worker
COPY migrations ./migrations
COPY templates ./templates
COPY static ./static
RUN uv sync --frozen --no-dev

# The data directory's metrics/ is a volume shared by portal, worker and llm-gateway;
# made here so a new volume starts out writable by the portal user.
RUN mkdir -p /app/.portal/metrics && chown -R portal:portal /app/.portal
USER portal
EXPOSE 8000
CMD ["portal", "serve", "--host", "0.0.0.0", "--port", "8000"]
