"""The wheel carries every subpackage and the shipped policies (an editable install would hide a
missing one: it imports from the source tree)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_the_wheel_holds_every_package_and_the_policies(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("mcp_guard-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in (ROOT / "mcp_guard").rglob("__init__.py"):
        assert str(init.relative_to(ROOT)) in names, init
    for module in (ROOT / "mcp_guard").rglob("*.py"):
        assert str(module.relative_to(ROOT)) in names, module
    assert {"mcp_guard/policies/default.yaml", "mcp_guard/policies/strict.yaml"} <= names


def test_the_build_backend_floor_is_one_that_reads_the_spdx_license_and_ships_the_license_file(tmp_path: Path) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    floor = next(r for r in project["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(floor.split(">=")[1].split(".")[0]) >= 77  # older setuptools refuse `license = "MIT"`
    assert project["project"]["license"] == "MIT" and "MIT License" in (ROOT / "LICENSE").read_text()


def test_every_third_party_module_the_code_imports_is_declared() -> None:
    import tomllib

    declared = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    source = "\n".join(p.read_text() for p in (ROOT / "mcp_guard").rglob("*.py"))
    used = {"opentelemetry": "opentelemetry-api", "tomlkit": "tomlkit", "shtab": "shtab", "req.form()": "python-multipart"}
    for marker, package in used.items():
        if marker in source:
            assert package in declared, package
