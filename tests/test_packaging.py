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
