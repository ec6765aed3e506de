"""The deployment in examples/deploy/ is accepted by the tools that will run it.

HAProxy checks its config (with a real certificate in place of the placeholder path),
``systemd-analyze verify`` the unit (with this checkout's ``mcp-guard`` in place of
/opt/mcp-guard), and the PostgreSQL setup script runs on a real server and gives a role that
can run the guard's store and no more. The Containerfile is not built here."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

import pytest

from mcp_guard.audit import Audit
from mcp_guard.store import PostgresStore
from tests.conftest import BIN, ROOT
from tests.instances.gateway import haproxy
from tests.postgres import Cluster, _bindir

DEPLOY = ROOT / "examples" / "deploy"


def self_signed(path: Path) -> None:
    """A throwaway certificate and key in one PEM file, as HAProxy's ``crt`` takes them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp.example.org")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + pem)


def test_the_example_haproxy_config_is_valid_without_warnings(tmp_path: Path) -> None:
    binary = haproxy()
    self_signed(tmp_path / "cert.pem")
    config = tmp_path / "haproxy.cfg"
    text = (DEPLOY / "haproxy.cfg").read_text()
    assert "/etc/haproxy/certs/mcp.example.org.pem" in text
    config.write_text(text.replace("/etc/haproxy/certs/mcp.example.org.pem", str(tmp_path / "cert.pem")))
    done = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_the_example_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (Debian's systemd package has it)")
    text = (DEPLOY / "mcp-guard.service").read_text()
    for placeholder in ("/opt/mcp-guard/bin/mcp-guard", "/etc/mcp-guard/mcp-guard.env"):
        assert placeholder in text
    env = tmp_path / "mcp-guard.env"
    env.write_text((DEPLOY / "mcp-guard.env").read_text())
    unit = tmp_path / "mcp-guard.service"
    unit.write_text(text.replace("/opt/mcp-guard/bin/mcp-guard", str(BIN / "mcp-guard"))
                    .replace("/etc/mcp-guard/mcp-guard.env", str(env)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if unit.name in line]
    assert done.returncode == 0 and complaints == [], done.stdout + done.stderr


def test_the_postgres_setup_gives_a_role_that_runs_the_store_and_keeps_others_out(postgres_cluster: Cluster) -> None:
    import psycopg

    bindir = _bindir()
    assert bindir is not None
    psql = bindir / "psql"
    admin = postgres_cluster.url("postgres")
    script = DEPLOY / "postgres.sql"
    password = "guard_password=pw-" + "x" * 12
    argv = [str(psql), admin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", password, "-f", str(script)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    url = f"postgresql://mcp_guard@127.0.0.1:{postgres_cluster.port}/mcp_guard"
    store = PostgresStore(url)  # migrates: the role may create the guard's tables
    audit = Audit(store, key=b"k" * 32)
    audit.append("call.finished", {"tool": "t", "outcome": "completed"})
    assert audit.verify() is None
    store.close()
    with psycopg.connect(admin, autocommit=True) as conn:
        roles = "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname='mcp_guard'"
        row = conn.execute(roles).fetchone()
        assert row == (False, False, False)
        conn.execute("CREATE ROLE bystander LOGIN")
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(f"postgresql://bystander@127.0.0.1:{postgres_cluster.port}/mcp_guard").close()
