"""callbacks/ and datamodules/ are plain, self-contained Python: they are copied verbatim into
``src/<package>/`` of every generated project, so they must not use Jinja, must import their siblings relatively, and must not import each other."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.bake_helpers import REPO_ROOT, VENDORED, jinja_leftovers

SOURCES = sorted(
    path for name in VENDORED for path in (REPO_ROOT / name).rglob("*.py") if "__pycache__" not in path.parts
)


def _id(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def import_problems(source: str, module_path: tuple[str, ...]) -> list[str]:
    """What breaks the import rules in ``source``, the module at ``module_path`` (e.g. ("callbacks", "x")).

    Rules: siblings only through relative imports that stay inside the module's own top-level
    package; never the other vendored package, in any form (absolute, relative, importlib).
    """
    own = module_path[0]
    others = set(VENDORED) - {own}
    package = module_path[:-1]  # the package the module is in (its own for __init__ files too)
    problems = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in VENDORED:
                    problems.append(f"line {line}: absolute `import {alias.name}` (use a relative import)")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                if module.split(".")[0] in VENDORED:
                    problems.append(f"line {line}: absolute `from {module} import ...` (use a relative import)")
                continue
            if node.level > len(package):
                problems.append(f"line {line}: `from {'.' * node.level}{module} import ...` reaches outside {own}/")
                base: tuple[str, ...] = ()
            else:
                base = package[: len(package) - node.level + 1]
            target = (*base, *module.split(".")) if module else base
            names = {alias.name for alias in node.names}
            if set(target) & others or (not module and names & others) or (node.level > len(package) and names & others):
                problems.append(f"line {line}: {own}/ imports {' or '.join(sorted(others))}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"import_module", "__import__"} and node.args and isinstance(node.args[0], ast.Constant):
                target = str(node.args[0].value).lstrip(".").split(".")[0]
                if target in VENDORED:
                    problems.append(f"line {line}: {name}({node.args[0].value!r}) (use a relative import)")
    return problems


def _module_path(path: Path) -> tuple[str, ...]:
    return path.relative_to(REPO_ROOT).with_suffix("").parts


def test_both_packages_have_sources():
    for name in VENDORED:
        assert (REPO_ROOT / name / "__init__.py").is_file()
    assert len(SOURCES) >= 4


@pytest.mark.parametrize("path", SOURCES, ids=_id)
def test_imports_are_relative_and_never_cross(path):
    problems = import_problems(path.read_text(encoding="utf-8"), _module_path(path))
    assert not problems, f"{_id(path)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", SOURCES, ids=_id)
def test_no_jinja(path):
    leftovers = jinja_leftovers(path.read_text(encoding="utf-8"), rendered=False)
    assert not leftovers, f"{_id(path)} holds Jinja (it is copied, never rendered):\n" + "\n".join(leftovers)


@pytest.mark.parametrize(
    ("source", "module", "bad"),
    [
        ("from .vocab import Vocabulary", ("datamodules", "text"), False),
        ("from . import vocab", ("datamodules", "__init__"), False),
        ("from .wandb_io import find_wandb_logger", ("callbacks", "grad_norm"), False),
        ("import callbacks.wandb_io", ("callbacks", "grad_norm"), True),
        ("import datamodules", ("callbacks", "grad_norm"), True),
        ("from callbacks.wandb_io import x", ("callbacks", "grad_norm"), True),
        ("from datamodules import Vocabulary", ("callbacks", "grad_norm"), True),
        ("from ..datamodules import Vocabulary", ("callbacks", "grad_norm"), True),
        ("from ..datamodules.vocab import Vocabulary", ("callbacks", "grad_norm"), True),
        ("from .. import datamodules", ("callbacks", "grad_norm"), True),
        ("from ..callbacks import GradNormMonitor", ("datamodules", "text"), True),
        ("import importlib\nimportlib.import_module('datamodules.vocab')", ("callbacks", "x"), True),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from datamodules import V", ("callbacks", "x"), True),
        ("import torch\nfrom lightning.pytorch import Callback", ("callbacks", "x"), False),
    ],
)
def test_the_import_rules_catch_violations(source, module, bad):
    """The checker itself: it flags each forbidden form and passes the allowed ones."""
    assert bool(import_problems(source, module)) is bad, import_problems(source, module)


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ('x = "{{ cookiecutter.package_name }}"', True),
        ("# {% if cookiecutter.task == 'x' %}", True),
        ("{# a jinja comment #}", True),
        ("name = {{ package_name }}", True),
        ('return {"state": {"steps": 1}}', False),
        ('f"{rate:.1%}"', False),
        ('f"{{literal}} {value}"', False),
    ],
)
def test_the_jinja_check_catches_templates_only(text, bad):
    assert bool(jinja_leftovers(text, rendered=False)) is bad


def _declared_all(init: Path) -> list[str]:
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            value = ast.literal_eval(node.value)
            assert isinstance(value, (list, tuple)) and all(isinstance(n, str) for n in value), "__all__ must list strings"
            return list(value)
    raise AssertionError(f"{_id(init)} defines no __all__")


@pytest.mark.parametrize("name", VENDORED)
def test_init_exports_all_names(name):
    declared = _declared_all(REPO_ROOT / name / "__init__.py")
    assert declared, f"{name}/__init__.py has an empty __all__"
    assert len(declared) == len(set(declared)), f"{name}.__all__ lists a name twice"
    package = importlib.import_module(name)
    assert Path(package.__file__).resolve() == (REPO_ROOT / name / "__init__.py").resolve(), package.__file__
    assert list(package.__all__) == declared
    missing = [n for n in declared if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names what {name} does not define: {missing}"
    namespace: dict = {}
    exec(f"from {name} import *", namespace)  # noqa: S102 - the star import users get
    assert set(declared) <= set(namespace)
