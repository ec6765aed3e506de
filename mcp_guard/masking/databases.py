"""Hyperscan databases of the pre-pass's patterns (fast.py), compiled once and kept on disk.

One database per set of families a label set wants (a guard masks a few label sets, each
scanned without the families it does not want), each in two forms: every match reported, for
the zones, or each pattern's first only, for which detectors are present at all.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

try:
    import hyperscan
except ImportError:  # fast.AVAILABLE is then False and nothing here is called
    hyperscan = None

__all__ = ["database"]


class Family(Protocol):
    flags: int
    hint: Any

    def loosened(self) -> tuple[bytes, Any]: ...


_compiled: dict[tuple[frozenset[int] | None, bool], Any] = {}


def database(families: Sequence[Family], subset: frozenset[int] | None = None, *, single: bool = False) -> Any:
    """The database of ``families`` (those at ``subset``'s indices; ``None``: all), each match
    reported with its family's index; with ``single``, each family's first match only."""
    key = (subset, single)
    db = _compiled.get(key)
    if db is None:
        indices = range(len(families)) if subset is None else sorted(subset)
        kind = ("single-" if single else "") + ("" if subset is None else f"{_subset_name(indices)}-")
        db = _compiled[key] = _cached(families, kind) or _compile(families, indices, single, kind)
    return db


def _subset_name(indices: Sequence[int]) -> str:
    return hashlib.sha256(repr(list(indices)).encode()).hexdigest()[:12]


def _compile(families: Sequence[Family], indices: Sequence[int], single: bool, kind: str) -> Any:
    db = hyperscan.Database()
    flags = [families[i].flags for i in indices]
    if single:  # where a pattern first matches is all that is asked: no start of match
        flags = [(f & ~hyperscan.HS_FLAG_SOM_LEFTMOST) | hyperscan.HS_FLAG_SINGLEMATCH for f in flags]
    db.compile(
        expressions=[families[i].loosened()[0] for i in indices], ids=list(indices), elements=len(indices), flags=flags,
    )
    _store(db, families, kind)
    return db


def _cache_path(families: Sequence[Family], kind: str) -> Path:
    """Compiling takes ~80 ms of start-up; a compiled database is kept in the home, named by
    what it is compiled from: every hint (its pattern and `som`; their order is the ids), the
    code that loosens them and this, Python's (whose ``re`` it uses), Hyperscan's build, the machine."""
    from .. import settings

    build = os.stat(hyperscan.__file__)  # the installed build (cheaper to ask than its metadata)
    hints = [(f.hint.pattern, f.hint.som) for f in families]
    here = Path(__file__).parent
    code = hashlib.sha256((here / "fast.py").read_bytes() + Path(__file__).read_bytes()).hexdigest()
    key = hashlib.sha256(
        repr((hints, code, sys.version, hyperscan.__file__, build.st_size, build.st_mtime_ns, os.uname().machine)).encode()
    )
    return settings.current().cache_dir / f"hyperscan-{kind}{key.hexdigest()[:20]}.db"


def _cached(families: Sequence[Family], kind: str) -> Any:
    from ..owner_only import read_own

    try:
        data = read_own(_cache_path(families, kind))  # never another account's, or one it could change
        if data is None:
            return None
        db = hyperscan.loadb(data, hyperscan.HS_MODE_BLOCK)
        db.scratch = hyperscan.Scratch(db)
        return db
    except Exception:  # none yet, unreadable, or from another build: compile
        return None


def _store(db: Any, families: Sequence[Family], kind: str) -> None:
    from ..owner_only import write_own

    try:
        write_own(_cache_path(families, kind), hyperscan.dumpb(db))
    except OSError:
        pass  # a read-only home: compile again next time
