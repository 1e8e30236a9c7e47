"""Which files and folders of the project one request goes through: the measure
of the house behind `bench/path.py` and tests/integration/test_request_path.py.

`Recorder` is a profile hook (`sys.setprofile`): it records every function of
the project that starts (a coroutine resuming after an await is not a new call)
and, for each, the nearest project function below it on the stack (its caller;
none when the event loop started it, as it does a DataLoader's batch). `Path`
is what it saw: the files in the order first entered, and the caller -> callee
pairs that cross from one folder into another, with those that run against the
layer order of the import contract (pyproject.toml). Counts, not time.

A call that the event loop makes (a callback, a task's first step) has no
project caller: an upward call made that way is not seen as one.
"""

from __future__ import annotations

import dis
import tomllib
from collections import Counter
from pathlib import Path as FilePath
from types import CodeType, FrameType
from typing import Any

ROOT = FilePath(__file__).resolve().parent.parent
_PREFIX = str(ROOT) + "/"


def layer_of() -> dict[str, int]:
    """Folder -> its row in the import contract (0 = the top)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [
        c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    return {
        name.strip(): row
        for row, names in enumerate(contract["layers"])
        for name in names.split("|")
    }


_first_resume: dict[CodeType, int] = {}


def _fresh(frame: FrameType) -> bool:
    """True when the frame starts, false when a coroutine or generator resumes."""
    code = frame.f_code
    if code not in _first_resume:
        _first_resume[code] = next(
            (i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"), 0
        )
    return frame.f_lasti <= _first_resume[code]


def _project(path: str) -> str | None:
    if not path.startswith(_PREFIX) or "/.venv/" in path:
        return None
    rel = path[len(_PREFIX) :]
    return None if rel.startswith(("bench/", "tests/")) else rel


class Recorder:
    """The profile hook. `files`: project files in the order first entered;
    `crossings`: (caller file, callee file) -> calls."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.crossings: Counter[tuple[str, str]] = Counter()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        callee = _project(frame.f_code.co_filename)
        if callee is None or not _fresh(frame):
            return
        if callee not in self.files:
            self.files.append(callee)
        caller_frame = frame.f_back
        while caller_frame is not None:
            caller = _project(caller_frame.f_code.co_filename)
            if caller is not None:
                if caller != callee:
                    self.crossings[(caller, callee)] += 1
                return
            caller_frame = caller_frame.f_back

    @property
    def folders(self) -> set[str]:
        return {f.split("/")[0] for f in self.files}

    def across(self) -> list[tuple[str, str, int]]:
        """The caller -> callee pairs whose files are in different folders."""
        return [
            (a, b, n)
            for (a, b), n in self.crossings.items()
            if a.split("/")[0] != b.split("/")[0]
        ]

    def upward(self, layers: dict[str, int]) -> list[tuple[str, str, int]]:
        """The pairs that cross a folder against the layer order. Raises
        KeyError for a folder the import contract does not name."""
        return [
            (a, b, n)
            for a, b, n in self.across()
            if layers[b.split("/")[0]] < layers[a.split("/")[0]]
        ]


__all__ = ["Recorder", "layer_of"]
