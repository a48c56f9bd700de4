"""Vendor callbacks/ and datamodules/ into the package, record the answers, drop other tasks' files."""

import json
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path({{ liandan_repo_root | tojson }})
CONTEXT = json.loads({{ cookiecutter | tojson | tojson }})
PROJECT = Path.cwd()
PACKAGE_DIR = PROJECT / "src" / CONTEXT["package_name"]
VENDORED = ("callbacks", "datamodules")

# Files that only one task uses, relative to the project; those of the other tasks are removed.
TASK_FILES = {
    "text_classification": [
        "src/{package}/models/text_classification.py",
        "src/{package}/datamodules/text.py",
        "src/{package}/datamodules/text_io.py",
        "src/{package}/datamodules/vocab.py",
    ],
}


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


def drop_other_tasks(project: Path, package: str, task: str) -> list[Path]:
    """Remove the files of every task but ``task``; returns what was removed."""
    removed = []
    for other, files in TASK_FILES.items():
        if other == task:
            continue
        for pattern in files:
            path = project / pattern.format(package=package)
            if path.exists():
                path.unlink()
                removed.append(path)
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
    drop_other_tasks(PROJECT, CONTEXT["package_name"], CONTEXT["task"])
    (PROJECT / ".cookiecutter.json").write_text(json.dumps(answers(CONTEXT), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
