"""The layout is a checked contract: phases are layered, product code never reaches the sandbox
or the test tooling, every public name says what it is, and nothing reads outside the repo."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "stemkit"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_import_contracts_hold():
    """`lint-imports` (pyproject's [tool.importlinter]): layers, no sandbox, no cycles."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_product_code_never_imports_test_tooling_or_bench():
    offenders = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{path.relative_to(ROOT)}: {n}"
                for n in names
                if n.split(".")[0] in ("tests", "bench")
            ]
    assert offenders == []


def test_nothing_reads_the_shared_folder_beside_the_repo():
    """The repository alone is the product: no path into the shared folder beside it."""
    pattern = re.compile(r"""(parent\s*/\s*["']shared["']|\.\./shared|"shared"\s*/\s*"api")""")
    found = [
        str(p.relative_to(ROOT))
        for folder in ("stemkit", "tests", "notebooks", "bench", "scripts")
        for p in (ROOT / folder).rglob("*")
        if p.suffix in (".py", ".ipynb", ".toml", ".sh")
        and p.name != "test_layout.py"
        and pattern.search(p.read_text(encoding="utf-8", errors="replace"))
    ]
    assert found == []


def test_every_public_module_class_and_function_has_a_docstring():
    missing = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(ROOT)
        if not ast.get_docstring(tree):
            missing.append(f"{rel}: module")
        for node in tree.body:
            public = not node.name.startswith("_") if hasattr(node, "name") else False
            kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            if isinstance(node, kinds) and public and not ast.get_docstring(node):
                missing.append(f"{rel}:{node.lineno} {node.name}")
    assert missing == []


def test_phases_are_places_in_the_code():
    """The phases a user sees are subpackages; the shared contracts have one owner each."""
    for phase in ("separate", "analyze", "compare", "providers", "sandbox", "dsp", "demo"):
        assert (PACKAGE / phase / "__init__.py").is_file(), phase
    flat = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(flat) <= 15, flat  # the top level holds the core and the entry points only
    # the batch folder's layout is spelled out in one module
    spelled = [
        str(p.relative_to(ROOT))
        for p in _modules()
        if p.name != "batchdir.py"
        and re.search(r"""["']record\.json["']""", p.read_text())
        and "sandbox" not in p.parts
    ]
    assert spelled == []


def test_notebooks_are_clean_thin_sources():
    """The notebooks in the repository are the source (edited in Jupyter, never generated):
    committed without outputs, with a ``parameters`` cell and markdown that says what each step
    shows; the logic stays in the library."""
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert nb.metadata["kernelspec"]["name"] == "python3", path.name
        assert [c for c in code if c.get("outputs") or c.get("execution_count")] == [], path.name
        assert any("parameters" in c.metadata.get("tags", []) for c in code), path.name
        assert any(c.cell_type == "markdown" for c in nb.cells), path.name
        lines = sum(len(c.source.splitlines()) for c in code)
        assert lines <= 100, f"{path.name}: {lines} lines of code; move logic into stemkit"
        params = next(c for c in code if "parameters" in c.metadata.get("tags", []))
        names = [
            t.id
            for node in ast.walk(ast.parse(params.source))
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        ]
        secret = re.compile(r"password|secret|token|api_?key", re.I)
        assert [n for n in names if secret.search(n)] == [], f"{path.name}: a credential parameter"
