"""``pip install birdbalance`` gives a working client without the server's dependencies;
``pip install 'birdbalance[server]'`` gives a working server.

The wheel is built as a user builds it (``pip wheel``, hatchling in an isolated build)
and installed into a fresh virtualenv by pip's own resolver, at the locked versions
(``pylock.toml`` as constraints). What it pulls in is then exactly the client's
dependencies. A program run by that virtualenv's Python creates an account, tops it up
and charges it on a real server with :class:`AdminClient` and :class:`AsyncAdminClient`,
verifies a signed webhook and refuses a forged one, and finds that none of the server's
packages is installed or imported. Its ``birdbalance`` command says what it needs. The
``server`` extra is then installed into the same virtualenv, and its command serves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from email.parser import Parser
from pathlib import Path
from zipfile import ZipFile

import httpx

from birdbalance.command import SERVER_MODULES
from birdbalance.webhooks import new_secret, signed_headers
from tests.servers import ADMIN_TOKEN, Server, free_port, sqlite_server

ROOT = Path(__file__).resolve().parents[2]

#: What the client alone installs: birdbalance, httpx and msgspec, and what httpx needs.
CLIENT_DISTRIBUTIONS = {
    "birdbalance",
    "httpx",
    "msgspec",
    "anyio",
    "certifi",
    "h11",
    "httpcore",
    "idna",
    "typing-extensions",
}

PROGRAM = r"""
import asyncio
import importlib.util
import json
import sys
from decimal import Decimal

server_url, token, body_hex, headers_json, secret, server_modules = sys.argv[1:]
server_modules = server_modules.split(",")
for name in server_modules + ["uvloop"]:
    assert importlib.util.find_spec(name) is None, f"{name} is installed"

from birdbalance import (
    AdminClient,
    AsyncAdminClient,
    NotEnoughBalanceError,
    WebhookSignatureError,
    verify_webhook,
)

with AdminClient(server_url, token) as admin:
    account = admin.create_account(payment="prepaid", type="euros", name="client only")
    admin.create_topup(account.id, amount="10")
    posted = admin.create_charge(account.id, amount=Decimal("2.5"), reference="m-1")
    try:
        admin.create_charge(account.id, amount="100")
        raise SystemExit("an overdraft was accepted")
    except NotEnoughBalanceError:
        pass


async def later() -> str:
    async with AsyncAdminClient(server_url, token) as admin:
        return (await admin.get_account(account.id)).balances.live.available

available = asyncio.run(later())

body = bytes.fromhex(body_hex)
headers = json.loads(headers_json)
verify_webhook(body, headers, secret)
try:
    verify_webhook(body.replace(b"low", b"lOw"), headers, secret)
    raise SystemExit("a forged body was accepted")
except WebhookSignatureError:
    pass

imported = sorted({m.split(".")[0] for m in sys.modules} & set(server_modules))
assert not imported, imported
print(json.dumps({"after": posted.balance.amount, "available": available}))
"""


def _run(*args: str | Path, timeout_s: float = 600, **kwargs: object) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout_s, **kwargs
    )  # type: ignore[call-overload]
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return str(done.stdout)


def _constraints(folder: Path) -> Path:
    lock = tomllib.loads((ROOT / "pylock.toml").read_text())
    pins = [f"{p['name']}=={p['version']}" for p in lock["packages"] if "directory" not in p]
    path = folder / "constraints.txt"
    path.write_text("\n".join(pins) + "\n")
    return path


def _requires(wheel: Path) -> list[str]:
    with ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    return metadata.get_all("Requires-Dist") or []


def test_the_client_alone_and_then_the_server_extra(tmp_path: Path) -> None:
    with sqlite_server(tmp_path) as server:
        _client_then_server(server, tmp_path)


def _client_then_server(server: Server, tmp_path: Path) -> None:
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp_path, ROOT)
    (wheel,) = tmp_path.glob("birdbalance-*.whl")
    core = [r for r in _requires(wheel) if "extra ==" not in r]
    assert sorted(r.split(">")[0].split("<")[0] for r in core) == ["httpx", "msgspec"], core

    venv = tmp_path / "venv"
    # A virtualenv without pip of its own: this pip installs into it (--python), and
    # skips compiling what it installs (a third of the time, and none of the point).
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    constraints = _constraints(tmp_path)
    _run(*pip, "install", "--quiet", "--no-compile", "-c", constraints, wheel)
    listed = json.loads(_run(*pip, "list", "--format=json"))
    installed = {p["name"].lower().replace("_", "-") for p in listed}
    assert installed == CLIENT_DISTRIBUTIONS
    _run(*pip, "check")

    secret = new_secret()
    body = json.dumps({"id": "evt_1", "type": "balance.low"}).encode()
    headers = signed_headers(body, secret, "evt_01M8251EV3X822KQNA7WA9CSZJ")
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    out = _run(
        python,
        program,
        server.url,
        ADMIN_TOKEN,
        body.hex(),
        json.dumps(headers),
        secret,
        ",".join(SERVER_MODULES),
        cwd=tmp_path,  # not the checkout: its src/ must not be what is imported
    )
    assert json.loads(out) == {"after": "7.5", "available": "7.5"}

    command = subprocess.run(
        [str(venv / "bin" / "birdbalance"), "--version"], capture_output=True, text=True
    )
    assert command.returncode == 1 and "pip install 'birdbalance[server]'" in command.stderr
    assert "Traceback" not in command.stderr

    _run(*pip, "install", "--quiet", "--no-compile", "-c", constraints, f"{wheel}[server]")
    _run(*pip, "check")
    _serves(venv, tmp_path)


def _serves(venv: Path, folder: Path) -> None:
    """The server extra's command serves the embedded default (SQLite, a demo account)
    and answers the demo key's balance."""
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BIRDBALANCE_", "MESSAGEBIRD_"))
    }
    # The embedded default, as on a fresh machine: the demo account is made there.
    env["XDG_DATA_HOME"] = str(folder / "data")
    log = (folder / "served.log").open("w")
    process = subprocess.Popen(
        [str(venv / "bin" / "birdbalance"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (folder / "served.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (folder / "served.log").read_text()
            time.sleep(0.1)
        printed = (folder / "served.log").read_text()
        key = printed.split("test key: ")[1].split()[0]
        answer = httpx.get(
            f"http://127.0.0.1:{port}/balance",
            headers={"Authorization": f"AccessKey {key}"},
            timeout=5,
        )
        assert answer.json() == {"payment": "prepaid", "type": "euros", "amount": 103}
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
