# birdbalance as a container image: `docker build -t birdbalance .`
# Configure it with BIRDBALANCE_* variables (docs/deploy.md); it listens on 8000.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install . && useradd --system --uid 10001 --home-dir /var/lib/birdbalance \
        --create-home birdbalance

USER birdbalance
ENV BIRDBALANCE_HOST=0.0.0.0 \
    BIRDBALANCE_PORT=8000 \
    BIRDBALANCE_DATABASE_URL=sqlite:////var/lib/birdbalance/birdbalance.db
EXPOSE 8000
VOLUME ["/var/lib/birdbalance"]

# Liveness only: a load balancer should route on /readyz (database reachable, schema current).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# SIGTERM (docker stop) finishes in-flight requests before the process exits.
STOPSIGNAL SIGTERM
CMD ["birdbalance", "serve", "--no-demo"]
