"""``birdbalance check`` against a plugin nobody here wrote: Debian's ``check_procs``
(monitoring-plugins) judges the same threshold ranges on a count of processes we start,
and the two must agree on every count; its ``-V`` and performance data set the form."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from birdbalance.thresholds import parse_range
from tests.databases import in_ci
from tests.servers import clean_env

CHECK_PROCS = Path("/usr/lib/nagios/plugins/check_procs")
RANGES = ["5:", "~:5", "3:7", "@3:7", "@5", "0:0", "@0:0", "~:0", "6:6"]


@pytest.fixture
def check_procs() -> Path:
    if not CHECK_PROCS.exists():
        if in_ci():
            pytest.fail("check_procs is missing: scripts/bootstrap dev installs it")
        pytest.skip("no check_procs (run scripts/bootstrap dev)")
    return CHECK_PROCS


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    """A copy of sleep under a name nothing else runs, and the processes started."""
    program = tmp_path / "bbrangejudge"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    started: list[subprocess.Popen[bytes]] = []
    yield program, started
    for proc in started:
        proc.kill()
        proc.wait()


def _their_status(check_procs: Path, warning: str, name: str) -> int:
    done = subprocess.run(
        [str(check_procs), "-C", name, "-w", warning], capture_output=True, text=True, check=False
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode


def test_ranges_alert_exactly_as_check_procs_does(
    check_procs: Path, sleeper: tuple[Path, list[subprocess.Popen[bytes]]]
) -> None:
    program, started = sleeper
    compared = 0
    for count in range(9):
        while len(started) < count:
            started.append(subprocess.Popen([str(program), "60"]))
        for text in RANGES:
            ours = 1 if parse_range(text).alerts(Decimal(count)) else 0
            assert ours == _their_status(check_procs, text, program.name), (text, count)
            compared += 1
        # The one documented deviation: our bare N is their "N:" (at least N).
        for bare in ("3", "6"):
            ours = 1 if parse_range(bare).alerts(Decimal(count)) else 0
            assert ours == _their_status(check_procs, f"{bare}:", program.name), (bare, count)
    assert compared == 9 * len(RANGES)


def test_version_and_performance_data_have_the_plugins_form(check_procs: Path) -> None:
    theirs = subprocess.run([str(check_procs), "-V"], capture_output=True, text=True, check=False)
    ours = subprocess.run(
        [sys.executable, "-m", "birdbalance", "check", "-V"],
        capture_output=True,
        text=True,
        check=False,
        env=clean_env(),
    )
    assert ours.returncode == theirs.returncode == 3
    assert ours.stdout.count("\n") == theirs.stdout.count("\n") == 1 and not ours.stderr
    # value;warn;crit;min;max, as check_procs gives it: procs=0;5:;2:;0;
    their_line = subprocess.run(
        [str(check_procs), "-C", "no-such-program-here", "-w", "5:", "-c", "2:"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    their_fields = their_line.split("|", 1)[1].strip().split("=", 1)[1].split(";")
    from birdbalance.check import judge
    from birdbalance.client import Balance

    line = judge(Balance("prepaid", "euros", Decimal(0)), parse_range("5:"), parse_range("2:"))
    our_fields = line.line.split("|", 1)[1].strip().split("=", 1)[1].split(";")
    assert our_fields == their_fields == ["0", "5:", "2:", "0", ""]


def test_usage_and_errors_are_one_unknown_line_on_stdout() -> None:
    for args in ([], ["-w", "20"], ["-w", "abc", "-c", "5"], ["-w", "20:10", "-c", "5"]):
        done = subprocess.run(
            [sys.executable, "-m", "birdbalance", "check", *args],
            capture_output=True,
            text=True,
            check=False,
            env=clean_env(MESSAGEBIRD_ACCESS_KEY="test_" + "x" * 25),
        )
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        assert done.stdout.startswith("BALANCE UNKNOWN - ") and done.stdout.count("\n") == 1
        assert done.stderr == "", done.stderr
