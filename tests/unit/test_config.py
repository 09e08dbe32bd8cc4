"""Settings from a TOML file under the environment, and secrets from files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from birdbalance.config import KNOWN, MAX_SECRET_FILE_BYTES, environment, load_settings
from birdbalance.errors import SettingsError

EXAMPLE = Path(__file__).parents[2] / "deploy" / "birdbalance.toml"


def write(tmp_path: Path, text: str, name: str = "birdbalance.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_file_sets_what_the_environment_does_not(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "port = 9000\nworkers = 2\ndatabase_timeout_s = 3\nsecure_cookies = true\n"
        'trusted_proxies = ["10.0.0.0/8", "192.0.2.1"]\n'
        '[smtp]\nhost = "smtp.example.com"\nfrom = "billing@example.com"\nport = 2525\n',
    )
    settings = load_settings(config, {"BIRDBALANCE_WORKERS": "4"})
    assert (settings.port, settings.workers, settings.database_timeout_s) == (9000, 4, 3.0)
    assert settings.secure_cookies is True
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.1")
    assert settings.smtp is not None and settings.smtp.port == 2525
    # BIRDBALANCE_CONFIG names the file when --config does not.
    named = load_settings(None, {"BIRDBALANCE_CONFIG": config})
    assert named.port == 9000 and named.workers == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("prot = 8000\n", "'prot', which is no setting"),
        ('port = "8000"\n', "port must be an integer"),
        ("secure_cookies = 1\n", "secure_cookies must be true or false"),
        ("port = true\n", "port must be an integer"),
        ('trusted_proxies = "10.0.0.1"\n', "trusted_proxies must be a list"),
        ('trusted_proxies = ["a,b"]\n', "trusted_proxies must be a list of text"),
        ("[smtp]\nhots = 'x'\n", "'smtp_hots', which is no setting"),
        ("port = \n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_naming_what_is_wrong(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(says)):
        load_settings(write(tmp_path, text), {})


def test_a_missing_or_huge_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read the config file"):
        load_settings(str(tmp_path / "nope.toml"), {})
    with pytest.raises(SettingsError, match="is over"):
        load_settings(write(tmp_path, "#" * (1024 * 1024 + 1)), {})


def test_secrets_come_from_files(tmp_path: Path) -> None:
    token = write(tmp_path, "a" * 32 + "\n", "token")
    url = write(tmp_path, f"sqlite:///{tmp_path}/from-file.db\n", "url")
    config = write(tmp_path, f'admin_token_file = "{token}"\n')
    settings = load_settings(config, {"BIRDBALANCE_DATABASE_URL_FILE": url})
    assert settings.admin_token == "a" * 32
    assert settings.database_url == f"sqlite:///{tmp_path}/from-file.db"
    assert settings.database_url_explicit
    password = write(tmp_path, "s3cret\n", "password")
    env = {
        "BIRDBALANCE_SMTP_HOST": "smtp.example.com",
        "BIRDBALANCE_SMTP_FROM": "a@example.com",
        "BIRDBALANCE_SMTP_SECURITY": "tls",
        "BIRDBALANCE_SMTP_USERNAME": "u",
        "BIRDBALANCE_SMTP_PASSWORD_FILE": password,
    }
    smtp = load_settings(None, env).smtp
    assert smtp is not None and smtp.password == "s3cret"


def test_a_secret_given_twice_or_unreadable_is_refused(tmp_path: Path) -> None:
    token = write(tmp_path, "b" * 32, "token")
    with pytest.raises(SettingsError, match=r"BIRDBALANCE_ADMIN_TOKEN and .*_FILE are both set"):
        environment(None, {"BIRDBALANCE_ADMIN_TOKEN": "x" * 32,
                           "BIRDBALANCE_ADMIN_TOKEN_FILE": token})  # fmt: skip
    for content, says in (
        (b"", "one line"),
        (b"two\nlines\n", "one line"),
        (b"\xff\xfe", "not UTF-8"),
        (b"x" * (MAX_SECRET_FILE_BYTES + 1), "is over"),
    ):
        path = tmp_path / "secret"
        path.write_bytes(content)
        with pytest.raises(SettingsError, match=says):
            environment(None, {"BIRDBALANCE_SESSION_SECRET_FILE": str(path)})
    with pytest.raises(SettingsError, match="cannot read"):
        environment(None, {"BIRDBALANCE_REDIS_URL_FILE": str(tmp_path / "missing")})


def test_the_example_file_loads_and_names_every_setting() -> None:
    """deploy/birdbalance.toml is valid, and each setting is in it (set or commented)."""
    settings = load_settings(str(EXAMPLE), {})
    assert settings.port == 8000 and settings.smtp is None
    text = EXAMPLE.read_text()
    named = set(re.findall(r"^#? ?([a-z_]+) =", text, re.MULTILINE))
    in_smtp = text[text.index("[smtp]") :]
    smtp_named = {f"smtp_{n}" for n in re.findall(r"^#? ?([a-z_]+) =", in_smtp, re.MULTILINE)}
    expected = {k for k in KNOWN if not k.endswith("_file") or k == "key_secret_file"}
    expected -= {"smtp_password", "database_url", "admin_token", "key_secret", "session_secret",
                 "redis_url"}  # fmt: skip
    missing = expected - named - smtp_named
    assert not missing, missing


def test_every_variable_the_readme_documents_is_read() -> None:
    """Each ``BIRDBALANCE_*`` of the README's configuration table is a setting (the cache
    size was documented and never read, until this test)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme[readme.index("## Configuration") :]
    table = table[: table.index("\n## ", 5)]
    documented = set(re.findall(r"`BIRDBALANCE_([A-Z_]+)`", table))
    assert documented, "the table moved"
    unread = {name for name in documented if name.lower() not in KNOWN}
    assert not unread, unread
    assert load_settings(None, {"BIRDBALANCE_BALANCE_CACHE_SIZE": "0"}).balance_cache_size == 0
