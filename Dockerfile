# birdbalance as a container image: `docker build -t birdbalance .`
# Configure it with BIRDBALANCE_* variables or a TOML file (docs/deploy.md); it listens
# on 8000. Built in two stages: the first installs exactly pylock.toml's versions, each
# checked against the lock's sha256 (--require-hashes), and birdbalance's own wheel into
# a virtualenv; the second copies only that virtualenv and runs as a numeric UID.
# hadolint checks this file (tests/unit/test_dockerfile.py).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pylock.toml pyproject.toml README.md LICENSE ./
COPY scripts/pylock-requirements ./scripts/
COPY src ./src
RUN python -m venv /opt/birdbalance \
    && python scripts/pylock-requirements pylock.toml > requirements.lock \
    && /opt/birdbalance/bin/pip install --no-cache-dir --require-hashes --no-deps \
        -r requirements.lock \
    && /opt/birdbalance/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/wheel . \
    && /opt/birdbalance/bin/pip install --no-cache-dir --no-deps /tmp/wheel/birdbalance-*.whl

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PATH=/opt/birdbalance/bin:$PATH
COPY --from=build /opt/birdbalance /opt/birdbalance
RUN mkdir -p /var/lib/birdbalance && chown 10001:10001 /var/lib/birdbalance

# A numeric user: runtimes that refuse root (runAsNonRoot) can check it without a passwd.
USER 10001:10001
ENV HOME=/var/lib/birdbalance \
    BIRDBALANCE_HOST=0.0.0.0 \
    BIRDBALANCE_PORT=8000 \
    BIRDBALANCE_DATABASE_URL=sqlite:////var/lib/birdbalance/birdbalance.db
WORKDIR /var/lib/birdbalance
EXPOSE 8000
VOLUME ["/var/lib/birdbalance"]

# Liveness only: a load balancer should route on /readyz (database reachable, schema current).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# SIGTERM (docker stop) finishes in-flight requests before the process exits.
STOPSIGNAL SIGTERM
CMD ["birdbalance", "serve", "--no-demo"]
