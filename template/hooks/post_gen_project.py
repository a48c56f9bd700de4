"""Vendor callbacks/ and datamodules/ into the package, keep only the chosen task's code, record the answers.

A Python or YAML file whose first line is ``# task: <name>`` (or ``# task: <name>, <name>``) belongs to those tasks
alone, and a line that ends with such a marker (an import in an ``__init__.py``) too: a project of another
task has neither.
Everything else is shared by every task. The same rule covers the vendored packages and the template's
own files, so a generated project holds only its task's code and no import of another task's.
"""

import json
import re
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path({{ liandan_repo_root | tojson }})
CONTEXT = json.loads({{ cookiecutter | tojson | tojson }})
PROJECT = Path.cwd()
PACKAGE_DIR = PROJECT / "src" / CONTEXT["package_name"]
VENDORED = ("callbacks", "datamodules")
MARKER = re.compile(r"#\s*task:\s*(\w+(?:\s*,\s*\w+)*)\s*$")


def tasks_of(marker):
    """The task names of a marker match (``text_classification, sequence_classification``)."""
    return {name.strip() for name in marker.group(1).split(",")}


def task_of(text: str):
    """The tasks named on a file's first line (``# task: text_classification``), or ``None`` (shared)."""
    first = text.split("\n", 1)[0]
    found = MARKER.search(first) if first.startswith("#") else None
    return tasks_of(found) if found else None


def for_task(text: str, task: str) -> str:
    """``text`` without the lines marked for another task."""
    kept = []
    for line in text.splitlines(keepends=True):
        found = MARKER.search(line)
        if found is None or task in tasks_of(found):
            kept.append(line)
    return "".join(kept)


def vendor(root: Path, package_dir: Path) -> None:
    """Copy the shared packages into the generated package (the project owns its copy)."""
    for name in VENDORED:
        source = root / name
        if not (source / "__init__.py").is_file():
            raise FileNotFoundError(
                f"cannot find {name}/ in {root}. Bake from the whole liandan repository "
                "(its root, a zip of it or a git URL), not from the template/ folder alone."
            )
        shutil.copytree(
            source, package_dir / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )


def drop_other_tasks(project: Path, task: str) -> list[Path]:
    """Remove the other tasks' files and lines from the project's Python and YAML files; returns the removed files."""
    removed = []
    for path in sorted([*project.rglob("*.py"), *project.rglob("*.yaml")]):
        text = path.read_text(encoding="utf-8")
        owners = task_of(text)
        if owners is not None and task not in owners:
            path.unlink()
            removed.append(path)
            continue
        kept = for_task(text, task)
        if kept != text:
            path.write_text(kept, encoding="utf-8")
    return removed


def answers(context: dict) -> dict:
    """The user's answers, without cookiecutter's private keys (which hold machine paths)."""
    recorded = {key: value for key, value in context.items() if not key.startswith("_")}
    template = str(context.get("_template", ""))
    if template.startswith(("gh:", "gl:", "bb:", "https://", "git@", "git+")):
        recorded["_template"] = template
    return recorded


def main() -> int:
    try:
        vendor(REPO_ROOT, PACKAGE_DIR)
    except FileNotFoundError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    drop_other_tasks(PROJECT, CONTEXT["task"])
    (PROJECT / ".cookiecutter.json").write_text(json.dumps(answers(CONTEXT), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
