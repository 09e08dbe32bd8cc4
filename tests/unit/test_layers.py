"""The package's layers, read from its imports: no cycles, and no import points up.

core (money, ledger rules, alerts, event bodies, keys...) <- storage <- service <-
runtime <- http <- server and cli. The watcher and the client sit beside, on the core,
and the client imports none of the server's packages (the ``server`` extra).
"""

from __future__ import annotations

import ast
from pathlib import Path

import birdbalance

PACKAGE = Path(birdbalance.__file__).parent
#: What each layer may not import (its own layer and those below are allowed).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "storage": ("birdbalance.service", "birdbalance.runtime", "birdbalance.http",
                "birdbalance.cli", "birdbalance.server", "birdbalance.watch"),
    "runtime": ("birdbalance.http", "birdbalance.cli", "birdbalance.server",
                "birdbalance.service"),
    "watch": ("birdbalance.storage", "birdbalance.runtime", "birdbalance.http",
              "birdbalance.service", "birdbalance.cli"),
}  # fmt: skip
CORE = ("money", "ledger", "alerts", "event_bodies", "keys", "webhooks", "records",
        "alert_records", "errors", "timestamps", "ids", "daily", "forecast", "targets",
        "validation", "request_shapes", "endpoint", "admin_session", "admin_api",
        "admin_api_async", "admin_client", "client", "shapes", "account_shapes")  # fmt: skip


ABOVE_CORE = ("birdbalance.storage", "birdbalance.runtime", "birdbalance.http",
              "birdbalance.service", "birdbalance.cli", "birdbalance.server")  # fmt: skip


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("birdbalance")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                if target.startswith("birdbalance"):
                    found.add(target)
                    found |= {f"{target}.{a.name}" for a in node.names}
        graph[name] = found
    modules = set(graph)
    return {m: {i for i in found if i in modules and i != m} for m, found in graph.items()}


def test_there_is_no_import_cycle() -> None:
    graph = _imports()
    # A package's __init__ re-exporting its modules is not a cycle of concepts.
    edges = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(edges[module]):
            if state.get(dep) == 1:
                raise AssertionError(" -> ".join([*path[path.index(dep) :], dep]))
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_no_layer_imports_one_above_it() -> None:
    graph = _imports()
    wrong = []
    for module, deps in graph.items():
        layer = module.split(".")[1] if "." in module else ""
        forbidden = FORBIDDEN.get(layer, ())
        if layer in CORE:
            forbidden = ABOVE_CORE
        wrong += [f"{module} -> {d}" for d in deps if any(_within(d, f) for f in forbidden)]
    assert wrong == []


def test_the_command_line_starts_without_the_client() -> None:
    """Local subcommands (most of them) never pay for httpx, asyncio's client or rich: the
    client is imported when a remote command runs (each CLI test starts a process)."""
    import subprocess
    import sys

    probe = "import sys, birdbalance.cli; print(sorted({'httpx', 'rich'} & set(sys.modules)))"
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == "[]", found


def test_the_client_imports_none_of_the_servers_packages() -> None:
    """What ``pip install birdbalance`` gives works with the ``server`` extra's packages
    made unimportable (tests/integration/test_client_install.py installs it for real)."""
    import subprocess
    import sys

    from birdbalance.command import SERVER_MODULES

    probe = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {set(SERVER_MODULES) | {"uvloop"}!r}:
            raise ImportError("refused: " + name)
sys.meta_path.insert(0, Refuse())
import birdbalance
from birdbalance import AdminClient, AsyncAdminClient, Client, verify_webhook, shapes
AdminClient("http://127.0.0.1:9", "token").close()
print("ok")
"""
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert found.stdout.strip() == "ok", found.stderr
