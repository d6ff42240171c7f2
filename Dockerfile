# syntax=docker/dockerfile:1
# logferry image: the `logferry` console script (agent, indexer, search, dashboards import).
#
#   docker build -t REGISTRY/logferry:0.1.0 .
#
# Stage 1 builds logferry's wheel and the wheels of its dependencies; stage 2 installs only
# those wheels, offline (--no-index), into a clean Python with no compiler or build tools, and
# removes pip. scripts/verify-image-install.sh replays the same steps without Docker.

# Exact tag, Debian 12 based. Update it deliberately (and re-run the chart tests).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the agent's chunk scans (agent/stages/_scan.c) and the indexer's level
# detection, fields and time checks and document serializer (indexer/stages/_levels.c,
# _limits.c, _timestamps.c, _document.c). It is optional to the build, which would go on without it, but the agent then
# spends about three times the CPU on each container-log line (benchmarks/agent/line_cost.py),
# the indexer about twice as much on each line.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# README.m[d]: copied when present (pyproject's readme), no error when absent.
COPY pyproject.toml setup.py README.m[d] ./
COPY logferry ./logferry
COPY agent ./agent
COPY indexer ./indexer
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip wheel --wheel-dir /wheels /wheels/logferry-*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="logferry" \
      org.opencontainers.image.description="Kubernetes and file logs -> Kafka -> OpenSearch, with no loss and no duplicates" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels logferry \
 && pip uninstall --yes pip setuptools wheel \
 && groupadd --system --gid 10001 logferry \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin logferry
# Non-root by default (numeric, so Kubernetes' runAsNonRoot can check it). The agent chart
# runs the container as uid 0, because only root can read kubelet's container log files.
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["logferry"]
CMD ["--help"]
