"""The Dockerfile, compose file and nginx configuration agree with each other and with
the settings birdbalance reads (no image is built here: the machine has no registry)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from birdbalance.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_compose_runs_two_nodes_on_one_postgresql() -> None:
    services = _compose()["services"]
    nodes = [name for name in services if name.startswith("birdbalance-")]
    assert len(nodes) == 2
    urls = {services[n]["environment"]["BIRDBALANCE_DATABASE_URL"] for n in nodes}
    assert len(urls) == 1
    url = urls.pop()
    assert url.startswith("postgresql://birdbalance:") and url.endswith(
        "@postgres:5432/birdbalance"
    )
    postgres = services["postgres"]["environment"]
    assert postgres["POSTGRES_USER"] == "birdbalance" and postgres["POSTGRES_DB"] == "birdbalance"
    for node in nodes:
        service = services[node]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        # Every variable given to a node is one birdbalance reads.
        fields = {f.upper() for f in Settings.__dataclass_fields__}
        for name in service["environment"]:
            assert name.startswith(ENV_PREFIX) and name.removeprefix(ENV_PREFIX) in fields
    assert services["lb"]["ports"] == ["8000:80"]


def test_nginx_balances_over_both_nodes_on_the_served_port() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    upstream = re.findall(r"server (birdbalance-\d):(\d+)", conf)
    nodes = sorted(n for n in _compose()["services"] if n.startswith("birdbalance-"))
    assert sorted(name for name, _ in upstream) == nodes
    dockerfile = (ROOT / "Dockerfile").read_text()
    port = re.search(r"BIRDBALANCE_PORT=(\d+)", dockerfile)
    assert port is not None and {p for _, p in upstream} == {port[1]}
    assert "access_log off" in conf


def test_dockerfile_serves_without_demo_as_an_unprivileged_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["birdbalance", "serve", "--no-demo"]' in dockerfile
    assert re.search(r"^USER 10001:10001$", dockerfile, re.MULTILINE)
    assert "BIRDBALANCE_HOST=0.0.0.0" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "**/*.db" in ignored
