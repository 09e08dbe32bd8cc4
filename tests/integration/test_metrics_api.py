"""``GET /metrics`` on a real server: counted by route template, parsed as Prometheus does."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.databases import sqlite_url
from tests.servers import ADMIN_TOKEN, Admin, Server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(base_url: str) -> Samples:
    r = httpx.get(base_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(r.text)
        for s in f.samples
    }


def _requests(samples: Samples, route: str, method: str, status: str) -> float:
    key = (("method", method), ("route", route), ("status", status))
    return samples.get(("birdbalance_http_requests_total", key), 0.0)


def test_requests_entries_and_outbox_are_counted(server: Server, admin: Admin) -> None:
    account = admin.account("prepaid", "euros")
    admin.topup(account["id"], "5")
    key = admin.key(account["id"])["key"]
    before = _scrape(server.url)
    balance = {"Authorization": f"AccessKey {key}"}
    for _ in range(3):
        assert httpx.get(server.url + "/balance", headers=balance).status_code == 200
    wrong = {"Authorization": "AccessKey " + "x" * 25}
    assert httpx.get(server.url + "/balance", headers=wrong).status_code == 401
    assert admin.post(account["id"], "charges", amount="2").status_code == 201
    assert admin.post(account["id"], "charges", idem="same", amount="1").status_code == 201
    assert admin.post(account["id"], "charges", idem="same", amount="1").status_code == 201
    assert admin.post(account["id"], "charges", amount="100").status_code == 422
    assert admin.http.get(f"/v1/accounts/{account['id']}").status_code == 200
    assert httpx.get(server.url + "/no/such/thing").status_code == 404
    after = _scrape(server.url)

    def delta(route: str, method: str, status: str) -> float:
        return _requests(after, route, method, status) - _requests(before, route, method, status)

    assert delta("/balance", "GET", "200") == 3
    assert delta("/balance", "GET", "401") == 1
    assert delta("/v1/accounts/{account_id}/charges", "POST", "201") == 3
    assert delta("/v1/accounts/{account_id}/charges", "POST", "422") == 1
    assert delta("/v1/accounts/{account_id}", "GET", "200") == 1
    assert delta("unmatched", "GET", "404") == 1
    # Route templates only: no account id, key or raw path ever becomes a label value.
    labels = " ".join(str(k) for k in after)
    assert account["id"] not in labels and key not in labels and "/no/such" not in labels

    def entries(outcome: str) -> float:
        name = ("birdbalance_ledger_entries_total", (("kind", "charge"), ("outcome", outcome)))
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert (entries("posted"), entries("replayed"), entries("refused")) == (2, 1, 1)
    latency = ("birdbalance_http_request_duration_seconds_count", (("route", "/balance"),))
    assert after[latency] - before.get(latency, 0.0) == 4
    assert after[("birdbalance_database_up", ())] == 1
    assert ("birdbalance_webhook_outbox_pending", ()) in after
    assert ("birdbalance_write_queue_depth", ()) in after
    # Off by default: no per-ledger series.
    assert not [k for k in after if k[0] == "birdbalance_ledger_balance"]


def test_metrics_need_the_admin_token(server: Server) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
        r = httpx.get(server.url + "/metrics", headers=headers)
        assert r.status_code == 401
        assert r.json()["errors"][0]["code"] == 2


def test_ledger_gauges_are_opt_in_and_bounded(tmp_path: Path) -> None:
    srv = Server(
        db_url=sqlite_url(tmp_path / "m.db"),
        log_path=tmp_path / "server.log",
        env={"BIRDBALANCE_METRICS_LEDGER_GAUGES": "3"},
    ).start()
    try:
        admin = Admin(srv.url)
        first = admin.account("prepaid", "euros")
        admin.topup(first["id"], "12.5")
        r = admin.http.post(
            f"/v1/accounts/{first['id']}/holds",
            json={"amount": "2.5"},
            headers={"Idempotency-Key": "hold-1"},
        )
        assert r.status_code == 201, r.text
        second = admin.account("prepaid", "credits")
        admin.topup(second["id"], "7")
        samples = _scrape(srv.url)
        admin.http.close()
    finally:
        srv.stop()
    ledgers = {
        (dict(labels)["account"], dict(labels)["mode"], name): value
        for (name, labels), value in samples.items()
        if name in {"birdbalance_ledger_balance", "birdbalance_ledger_available"}
    }
    # Three ledgers at most (the two accounts have four), in account order: ids are
    # time-ordered, so both of the first account's and the second's live ledger.
    assert first["id"] < second["id"]
    assert sorted({(a, m) for a, m, _ in ledgers}) == [
        (first["id"], "live"),
        (first["id"], "test"),
        (second["id"], "live"),
    ]
    assert ledgers[(first["id"], "live", "birdbalance_ledger_balance")] == 12.5
    assert ledgers[(first["id"], "live", "birdbalance_ledger_available")] == 10.0  # held 2.5
    assert ledgers[(first["id"], "test", "birdbalance_ledger_balance")] == 0
    assert ledgers[(second["id"], "live", "birdbalance_ledger_available")] == 7


def _exposed_names(base_url: str) -> set[str]:
    """Every sample name the server's metric families can have, observed or not."""
    r = httpx.get(base_url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in text_string_to_metric_families(r.text)
        for suffix in suffixes[family.type]
    }


def test_the_shipped_alert_rules_and_dashboard_use_metrics_that_exist(tmp_path: Path) -> None:
    import json
    import re

    import yaml

    srv = Server(
        db_url=sqlite_url(tmp_path / "m.db"),
        log_path=tmp_path / "server.log",
        env={"BIRDBALANCE_METRICS_LEDGER_GAUGES": "1"},
    ).start()
    try:
        exposed = _exposed_names(srv.url)
    finally:
        srv.stop()
    docs = Path(__file__).resolve().parents[2] / "docs" / "monitoring"
    rules = yaml.safe_load((docs / "birdbalance-alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 5 and all(rule.get("annotations") for rule in rules["groups"][0]["rules"])
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"birdbalance_[a-z_]+", expr)}
    assert used and used <= exposed, used - exposed


def test_a_two_worker_node_reports_all_of_its_traffic(tmp_path: Path) -> None:
    """Whichever worker answers a scrape reports the node: N requests, N counted, on
    every scrape in a row (before, each worker reported only what it served itself)."""
    started = time.time()
    server = Server(
        db_url=sqlite_url(tmp_path / "two.db"),
        log_path=tmp_path / "two.log",
        extra_args=("--no-demo", "--workers", "2"),
    ).start()
    try:
        admin = Admin(server.url)
        key = admin.key(admin.account()["id"])["key"]
        admin.http.close()
        before = [_scrape(server.url) for _ in range(6)]
        start = _requests(before[-1], "/balance", "GET", "200")
        assert all(_requests(s, "/balance", "GET", "200") == start for s in before)
        requests = 400
        # Fresh connections, so both workers take a share of them.
        for _ in range(requests):
            r = httpx.get(server.url + "/balance", headers={"Authorization": f"AccessKey {key}"})
            assert r.status_code == 200
        counts = [
            _requests(_scrape(server.url), "/balance", "GET", "200") - start for _ in range(8)
        ]
        assert counts == [requests] * 8, counts
        histogram = _scrape(server.url)
        served = histogram[
            ("birdbalance_http_request_duration_seconds_count", (("route", "/balance"),))
        ]
        assert served >= start + requests
        assert server.process is not None
        ours = _counter_dirs(server.process.pid, started)
        assert len(ours) == 1, ours
    finally:
        server.stop()
    # The run's directory of counters went with it.
    assert not any(d.exists() for d in ours)


def _counter_dirs(pid: int, since: float) -> set[Path]:
    """The directories holding the counters of ``pid``'s worker processes.

    Only counters written ``since`` the server started: a killed server leaves its
    directory behind, and a file named after a pid that this run's worker reuses would
    otherwise count as ours (a flake seen in CI)."""
    workers = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # the parent's pid
            workers.add(stat.parent.name)
    return {
        path.parent
        for path in Path(tempfile.gettempdir()).glob("birdbalance-metrics-*/*.counters")
        if path.stem in workers and path.stat().st_mtime >= since
    }
