"""The house holds its own rules: what one module imports from another by name
is in that module's `__all__`, and every name an `__all__` lists exists.
(Import direction is import-linter's job, in `make test`.)"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "api",
    "schema",
    "loaders",
    "permcore",
    "permauth",
    "permstore",
    "permbase",
    "permdev",
)


def modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = ast.parse(path.read_text())
    return found


def declared(tree: ast.Module) -> set[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return None


def top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
    return names


def test_every_name_imported_by_name_is_in_its_modules_all() -> None:
    mods = modules()
    wrong = []
    sources = [*mods.items()]
    for folder in ("tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            sources.append((str(path.relative_to(ROOT)), ast.parse(path.read_text())))
    for importer, tree in sources:
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.module in mods):
                continue
            exported = declared(mods[node.module])
            for alias in node.names:
                if f"{node.module}.{alias.name}" in mods:
                    continue  # a submodule
                if exported is None or alias.name not in exported:
                    wrong.append(f"{importer} imports {node.module}.{alias.name}")
    assert wrong == []


def test_every_name_in_an_all_exists() -> None:
    missing = []
    for name, tree in modules().items():
        exported = declared(tree)
        if exported is not None:
            missing += [f"{name}.{n}" for n in exported - top_level_names(tree)]
    assert missing == []
