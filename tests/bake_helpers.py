"""Shared helpers of the hook and bake tests: bake in isolation, copy/zip the repository, check a project.

Everything here drives the real cookiecutter (no mocks). Bakes use a throw-away user config so
that no test writes into ``~/.cookiecutters`` or ``~/.cookiecutter_replay``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path
from typing import Any, Optional

import yaml
from cookiecutter.main import cookiecutter

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = REPO_ROOT / "template"
VENDORED = ("callbacks", "datamodules")
DEFAULT_PACKAGE = "sentiment_classifier"
DEFAULT_SLUG = "sentiment-classifier"

# Never part of a copy or an archive of the repository (build outputs, environments, caches).
SKIP_DIRS = {".git", ".venv", "venv", "build", "runs", "wandb", "__pycache__", ".pytest_cache", ".mypy_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo")


# --------------------------------------------------------------------------------------- baking
def write_user_config(directory: Path) -> Path:
    """A cookiecutter user config whose caches live under ``directory`` (never in ``~``)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "cookiecutterrc.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cookiecutters_dir": str(directory / "cookiecutters"),
                "replay_dir": str(directory / "replay"),
            }
        ),
        encoding="utf-8",
    )
    return config


def bake(template: str | Path, output_dir: Path, config_dir: Path, **kwargs: Any) -> Path:
    """Run cookiecutter without prompts; returns the generated project's folder."""
    output_dir.mkdir(parents=True, exist_ok=True)
    result = cookiecutter(
        str(template),
        no_input=True,
        output_dir=str(output_dir),
        config_file=str(write_user_config(config_dir)),
        **kwargs,
    )
    return Path(result)


# ------------------------------------------------------------------------- copies and archives
def repo_files(root: Path = REPO_ROOT) -> list[Path]:
    """Files of the repository as a checkout has them, relative to ``root``.

    ``git ls-files`` (tracked + untracked-but-not-ignored) when ``root`` is a git work tree,
    else a walk that leaves out environments, build outputs and caches.
    """
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = sorted({Path(name) for name in listed.split("\0") if name})
        files = [f for f in files if (root / f).is_file() and not (root / f).is_symlink()]
        if files:
            return [f for f in files if not (set(f.parts) & SKIP_DIRS) and not f.name.endswith(SKIP_SUFFIXES)]
    except (OSError, subprocess.CalledProcessError):
        pass
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if not name.endswith(SKIP_SUFFIXES):
                files.append((Path(dirpath) / name).relative_to(root))
    return files


def copy_repo(destination: Path, root: Path = REPO_ROOT) -> Path:
    """Copy the repository's files (see ``repo_files``) to ``destination``; returns it."""
    for rel in repo_files(root):
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return destination


def zip_repo(archive: Path, top: str = "liandan", root: Path = REPO_ROOT) -> Path:
    """Zip the repository like a GitHub archive: everything under one top-level folder, folders first."""
    files = repo_files(root)
    folders = sorted({parent for rel in files for parent in rel.parents if parent != Path(".")})
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{top}/", "")  # cookiecutter requires the first entry to be the top folder
        for folder in folders:
            zf.writestr(f"{top}/{folder.as_posix()}/", "")
        for rel in files:
            zf.write(root / rel, f"{top}/{rel.as_posix()}")
    return archive


# ------------------------------------------------------------------------- reading the template
def template_prompts() -> dict[str, Any]:
    """template/cookiecutter.json."""
    return json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))


def answer_keys() -> set[str]:
    """The prompt names (what a user answers), without cookiecutter's private keys."""
    return {key for key in template_prompts() if not key.startswith("_")}


def tasks() -> list[str]:
    """The ``task`` choices of the template."""
    return list(template_prompts()["task"])


# The rule of the post-gen hook, written again here so a test can hold the hook to it: a Python file whose first
# line is ``# task: <name>`` (or ``# task: <name>, <name>``) belongs to those tasks only; so does a line ending
# with such a marker.
_MARKER = re.compile(r"#\s*task:\s*(\w+(?:\s*,\s*\w+)*)\s*$")


def _names(found: re.Match) -> set[str]:
    return {name.strip() for name in found.group(1).split(",")}


def owner(text: str) -> Optional[set[str]]:
    """The tasks a file belongs to (its first line's marker), or ``None`` for a file every task shares."""
    first = text.split("\n", 1)[0]
    found = _MARKER.search(first) if first.startswith("#") else None
    return _names(found) if found else None


def belongs(text: str, task: str) -> bool:
    """Whether a project of ``task`` holds the file of this ``text``."""
    owners = owner(text)
    return owners is None or task in owners


def for_task(text: str, task: str) -> str:
    """``text`` without the lines marked for another task."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if (found := _MARKER.search(line)) is None or task in _names(found))


def expected_python_files(task: str, package: str = DEFAULT_PACKAGE, source_root: Path = REPO_ROOT) -> set[str]:
    """The project-relative paths of every ``.py`` file a project of ``task`` must hold: the template's and
    the vendored packages', less those of other tasks."""
    template = source_root / "template" / "{{cookiecutter.project_slug}}"
    found = set()
    for path in template.rglob("*.py"):
        if "__pycache__" in path.parts or not belongs(path.read_text(encoding="utf-8"), task):
            continue
        found.add(path.relative_to(template).as_posix().replace("{{cookiecutter.package_name}}", package))
    for name in VENDORED:
        for path in (source_root / name).rglob("*.py"):
            if "__pycache__" in path.parts or not belongs(path.read_text(encoding="utf-8"), task):
                continue
            found.add(f"src/{package}/{name}/{path.relative_to(source_root / name).as_posix()}")
    return found


# ------------------------------------------------------------------------- checking a project
# Jinja left in a *rendered* file: any opening marker, a statement/comment marker, a cookiecutter
# variable. "}}" alone is legal YAML/Python (nested flow mappings, dict literals), so it is only
# flagged when it closes nothing on its line (see ``_orphan_close``).
RENDERED_MARKERS = re.compile(r"\{\{|\{%|%\}|\{#|cookiecutter\.(?!json\b)")
# Jinja in a *copied* Python file (vendored code is never rendered, so Python's own "{{"/"}}"
# in f-strings or nested dicts is fine): Jinja expressions, statements, comments, variables.
_JINJA_KEYWORDS = (
    "if|elif|else|endif|for|endfor|set|endset|raw|endraw|macro|endmacro|include|import|from|"
    "block|endblock|extends|filter|endfilter|with|endwith|call|endcall"
)
SOURCE_MARKERS = re.compile(
    r"\{\{-?\s+[\w.]+\s*(\|[^{}]*)?-?\}\}"  # {{ name }}, {{ a.b | filter }} (not f"{{name}}")
    r"|\{\{-?\s*[\w.]+\s*\|[^{}]*\}\}"  # {{name|filter}}
    r"|\{%-?\s*(" + _JINJA_KEYWORDS + r")\b"  # {% if ... %}
    r"|\{#.*?#\}"  # {# comment #}
    r"|\bcookiecutter\.(?!json\b)\w"  # cookiecutter.package_name
)


def _orphan_close(line: str) -> bool:
    """Whether ``line`` holds a "}}" that no "{" on the line opens (what a half-rendered tag leaves)."""
    previous = None
    while previous != line:
        previous, line = line, re.sub(r"\{[^{}]*\}", "", line)
    return "}}" in line


def jinja_leftovers(text: str, rendered: bool = True) -> list[str]:
    """Lines of ``text`` that still hold Jinja (``rendered``: strict markers; else: Jinja syntax only)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if rendered:
            hit = RENDERED_MARKERS.search(line) or _orphan_close(line)
        else:
            hit = SOURCE_MARKERS.search(line)
        if hit:
            found.append(f"{number}: {line.strip()}")
    return found


def tree(root: Path, skip_pycache: bool = True) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root`` (byte-code caches left out)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if skip_pycache and ("__pycache__" in rel.parts or path.suffix in SKIP_SUFFIXES):
            continue
        if path.is_file():
            out[rel.as_posix()] = path.read_bytes()
    return out


def check_project(
    project: Path,
    package: str = DEFAULT_PACKAGE,
    source_root: Path = REPO_ROOT,
    task: str = "text_classification",
    slug: Optional[str] = None,
) -> dict[str, Any]:
    """Assert everything every bake must satisfy; returns the parsed ``.cookiecutter.json``."""
    assert project.is_dir(), f"no project folder at {project}"
    if slug is not None:
        assert project.name == slug
    package_dir = project / "src" / package
    assert package_dir.is_dir(), f"no package folder {package_dir}"

    # callbacks/ and datamodules/ vendored verbatim, less the other tasks' files and lines; nothing more, no byte code
    vendored_paths = set()
    for name in VENDORED:
        copied, source = package_dir / name, source_root / name
        assert (copied / "__init__.py").is_file(), f"{name}/ was not vendored into {package_dir}"
        copied_tree = tree(copied, skip_pycache=False)
        source_tree = {rel: for_task(data.decode("utf-8"), task).encode("utf-8") for rel, data in tree(source).items()
                       if belongs(data.decode("utf-8"), task)}
        assert sorted(copied_tree) == sorted(source_tree), f"{name}/: files differ from {source} for task {task}"
        for rel, data in source_tree.items():
            assert copied_tree[rel] == data, f"{name}/{rel} is not {source / rel} (less other tasks' lines)"
        vendored_paths |= {copied / rel for rel in copied_tree}
    assert not list(project.rglob("__pycache__")), "byte-code caches were copied into the project"
    assert not list(project.rglob("*.pyc"))

    # no Jinja left anywhere; every .py compiles
    problems = []
    for path in sorted(p for p in project.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8")
        leftovers = jinja_leftovers(text, rendered=path not in vendored_paths)
        problems += [f"{path.relative_to(project)}:{line}" for line in leftovers]
        if path.suffix == ".py":
            compile(text, str(path), "exec")
    assert not problems, "Jinja markers left in generated files:\n" + "\n".join(problems)

    # configs parse; the design's presets exist
    configs = sorted((project / "configs").glob("*.yaml")) + sorted((project / "configs" / "presets").glob("*.yaml"))
    names = {p.relative_to(project / "configs").as_posix() for p in configs}
    assert {"default.yaml", "presets/debug.yaml", "presets/vanilla.yaml"} <= names, names
    for path in configs:
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), f"{path} is not a YAML mapping"

    # exactly the chosen task's Python files, and no line of another task's
    held = {path.relative_to(project).as_posix() for path in project.rglob("*.py")}
    expected = expected_python_files(task, package, source_root)
    assert held == expected, f"task {task}: extra {sorted(held - expected)}, missing {sorted(expected - held)}"
    for path in project.rglob("*.py"):
        foreign = [line for line in path.read_text(encoding="utf-8").splitlines()
                   if (found := _MARKER.search(line)) and task not in _names(found)]
        assert not foreign, f"{path.relative_to(project)} holds lines of other tasks: {foreign[:3]}"

    # a .gitignore keeps runs, checkpoints and caches out of the user's repository
    ignored = (project / ".gitignore").read_text(encoding="utf-8").split()
    assert {"runs/", "wandb/", "*.ckpt", "__pycache__/"} <= set(ignored), ignored

    # packaging metadata is valid TOML that names the package's command
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["name"] == project.name
    assert meta["project"]["scripts"][package] == f"{package}.cli:main"

    # the recorded answers: the prompts' keys, no private keys, no machine paths
    recorded_text = (project / ".cookiecutter.json").read_text(encoding="utf-8")
    recorded = json.loads(recorded_text)
    assert set(recorded) == answer_keys(), sorted(recorded)
    assert recorded["package_name"] == package and recorded["task"] == task
    for path in (source_root, project.parent, Path.home()):
        if len(path.parts) > 2:  # "/" or "/root" would also match ordinary text
            assert str(path) not in recorded_text, f".cookiecutter.json holds the machine path {path}"
    assert not [v for v in recorded.values() if isinstance(v, str) and os.path.isabs(v)]
    return recorded
