"""Secret classes of issue 15 end to end: a real MCP filesystem server reads files holding them,
and the guard's client sees placeholders, never the values; code read the same way arrives as
written (a coding agent edits against what it reads)."""

from __future__ import annotations

import base64
import random
import string
from pathlib import Path

import anyio
import pytest

from tests.conftest import connect, guard, node_server

pytestmark = pytest.mark.anyio

ALLOW_ALL = "version: 1\ndefaults: {action: allow}\n"
_RNG = random.Random(1515)


def _run(alphabet: str, n: int) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


def _secrets() -> dict[str, str]:
    """Fresh values per run (prefixes split so no scanner trips on this file)."""
    alnum = string.ascii_letters + string.digits
    return {
        "databricks": "da" + "pi" + _run("0123456789abcdef", 32),
        "passphrase": "copper-" + _run(string.ascii_lowercase, 6) + "-quartz-7",
        "mysql": _run(string.ascii_lowercase, 6) + "42!" + _run(string.ascii_uppercase, 3),
        "csv": _run(alnum, 12) + "#",
        "encoded": "Zx" + _run(alnum, 14) + "!",
    }


def _config(values: dict[str, str]) -> str:
    hidden = base64.b64encode(f"DB_PASSWORD={values['encoded']}\n".encode()).decode()
    return (
        f"The Databricks PAT for the nightly job is {values['databricks']}.\n"
        f"smtp:\n  username: ops\n  password: {values['passphrase']}\n"
        f"  503  mysql -h db.internal -u root -p'{values['mysql']}' billing < dump.sql\n"
        f"name,url,username,password\nBank,https://bank.example.org,ops,{values['csv']}\n\n"
        f"bootstrap: {hidden}\n"
    )


CODE = (
    "def connect(**kwargs):\n"
    "    password = kwargs.pop('password', None)\n"
    "    token = self.session_token or os.environ['API_TOKEN']\n"
    "    dsn = f\"postgres://{user}:{password}@{host}/app\"\n"
    "    secret = settings.SECRET_KEY  # AKIAIOSFODNN7EXAMPLE in the docs\n"
    "    return Client(password=password, token=token, dsn=dsn)\n"
)


async def test_secrets_by_format_context_and_encoding_reach_the_client_only_as_placeholders(tmp_path: Path) -> None:
    values = _secrets()
    (tmp_path / "notes.txt").write_text(_config(values))
    policy = tmp_path / "policy.yaml"
    policy.write_text(ALLOW_ALL)
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=str(policy))
    with anyio.fail_after(30):
        async with connect(argv) as client:
            read = await client.call_tool("read_text_file", {"path": str(tmp_path / "notes.txt")})
    seen = read.content[0].text  # type: ignore[union-attr]
    leaked = [name for name, value in values.items() if value in seen]
    assert leaked == []
    assert "bootstrap: " in seen and "<SECRET_" in seen
    assert base64.b64encode(b"DB_PASSWORD=").decode()[:12] in seen  # what is no secret stays readable


async def test_source_code_read_through_the_guard_arrives_as_written(tmp_path: Path) -> None:
    (tmp_path / "client.py").write_text(CODE)
    policy = tmp_path / "policy.yaml"
    policy.write_text(ALLOW_ALL)
    argv = guard(*node_server("server-filesystem", str(tmp_path)), policy=str(policy))
    with anyio.fail_after(30):
        async with connect(argv) as client:
            read = await client.call_tool("read_text_file", {"path": str(tmp_path / "client.py")})
    assert read.content[0].text == CODE  # type: ignore[union-attr]
