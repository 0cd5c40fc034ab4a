"""What a user installs: declared dependencies, the wheel's contents, the built front end."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "xai_widgets"
JS = ROOT / "js"
STATIC = PACKAGE / "static"

# import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "skimage": "scikit-image", "PIL": "pillow",
                "yaml": "pyyaml"}
# used only when the user asks for them (weights= from timm, marimo's layout, a training
# script, an audit's Zarr store or Ray engine): imported inside functions, declared in an
# extra, never needed to import xai_widgets
OPTIONAL = {"timm", "transformers", "torchvision", "mlxtend", "marimo", "zarr", "ray",
            "matplotlib"}


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string ('scikit-learn>=1.4' ...)."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _third_party_imports() -> dict[str, list[tuple[str, int, bool]]]:
    """Top-level name -> [(file, line, inside a function)] for every absolute import."""
    found: dict[str, list[tuple[str, int, bool]]] = {}

    def walk(node: ast.AST, in_function: bool, path: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            else:
                names = []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "xai_widgets":
                    found.setdefault(top, []).append((path, child.lineno, in_function))
            walk(child, in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)), path)

    for file in sorted(PACKAGE.rglob("*.py")):
        walk(ast.parse(file.read_text(encoding="utf-8")), False, str(file.relative_to(ROOT)))
    return found


def test_every_imported_module_is_declared_and_every_dependency_imported():
    project = _pyproject()["project"]
    required = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for group in project["optional-dependencies"].values() for r in group}
    imported = _third_party_imports()
    needed = {_name(DISTRIBUTION.get(top, top)) for top in imported if top not in OPTIONAL}
    assert not needed - required, (
        f"imported by xai_widgets but not in [project] dependencies: {sorted(needed - required)}")
    assert not required - needed, (
        "in [project] dependencies but never imported by xai_widgets (move it to an extra): "
        f"{sorted(required - needed)}")
    optional = {_name(DISTRIBUTION.get(top, top)) for top in imported if top in OPTIONAL}
    assert not optional - extras, f"optional imports in no extra: {sorted(optional - extras)}"


def test_optional_libraries_are_imported_only_inside_functions():
    at_module_level = [f"{path}:{line} imports {top}"
                       for top, places in _third_party_imports().items() if top in OPTIONAL
                       for path, line, in_function in places if not in_function]
    assert not at_module_level


def test_dependency_floors_are_ranges():
    """Every runtime requirement has a floor and no pin or cap (resolvers need the room)."""
    for requirement in _pyproject()["project"]["dependencies"]:
        assert re.fullmatch(r"[A-Za-z0-9._-]+>=[0-9][0-9A-Za-z.]*", requirement), requirement


def test_license_matches_pyproject():
    assert _pyproject()["project"]["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def test_wheel_ships_the_front_end_and_py_typed(tmp_path):
    pytest.importorskip("hatchling", reason="hatchling (the build backend) is not installed")
    build = subprocess.run(
        [sys.executable, "-c",
         "import sys; from hatchling.build import build_wheel; print(build_wheel(sys.argv[1]))",
         str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = tmp_path / build.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "xai_widgets/py.typed" in names
    static = {f"xai_widgets/static/{p.name}" for p in STATIC.iterdir() if p.is_file()}
    assert static and static <= names, sorted(static - names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)


def test_static_matches_a_fresh_build(tmp_path):
    """xai_widgets/static is what `npm run build` in js/ makes from the committed sources."""
    esbuild = JS / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.skip("js/node_modules is missing: run `npm ci` in js/ to check the bundles")
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    script = json.loads((JS / "package.json").read_text(encoding="utf-8"))["scripts"]["build"]
    out = tmp_path / "static"
    out.mkdir()
    assert "../xai_widgets/static" in script, script
    script = script.replace("../xai_widgets/static", str(out))
    env = {**os.environ, "PATH": f"{esbuild.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    build = subprocess.run(["bash", "-c", script], cwd=JS, capture_output=True, text=True,
                           timeout=120, env=env)
    assert build.returncode == 0, build.stderr
    fresh = {p.name: p.read_bytes() for p in out.iterdir()}
    committed = {p.name: p.read_bytes() for p in STATIC.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(committed), "files differ: rebuild with `npm run build` in js/"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"static/{stale} differ from a fresh build: `npm run build` in js/"
