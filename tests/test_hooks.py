"""The pre-gen hook refuses bad answers with a message saying what to type, and writes nothing;
the post-gen hook records exactly the answers. Every test bakes the real template."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException

from tests.bake_helpers import (
    REPO_ROOT,
    answer_keys,
    bake,
    check_project,
    template_prompts,
    write_user_config,
)

PACKAGE_FIX = "Type a different package_name, e.g. {!r}."

# (package_name, what the hook says, the name it suggests instead)
BAD_PACKAGES = [
    ("class", "is a Python keyword", "my_class"),
    ("json", "is a standard-library module", "my_json"),
    ("os", "is a standard-library module", "my_os"),
    ("torch", "is the name of a module the project depends on", "my_torch"),
    ("lightning", "is the name of a module the project depends on", "my_lightning"),
    ("wandb", "is the name of a module the project depends on", "my_wandb"),
    ("gensim", "is the name of a module the project depends on", "my_gensim"),
    ("callbacks", "is the name of a module the project depends on or ships", "my_callbacks"),
    ("datamodules", "is the name of a module the project depends on or ships", "my_datamodules"),
    ("2fast", "is not a valid Python package name", "project_2fast"),
    ("my-pkg", "is not a valid Python package name", "my_pkg"),
    ("MyPkg", "is not a valid Python package name", "mypkg"),
]
# (project_slug, what the hook says, the slug it suggests)
BAD_SLUGS = [
    ("bad/slug", "is not a usable folder name", "bad-slug"),
    ("../x", "is not a usable folder name", "x"),
    ("-x", "is not a usable folder name", "x"),
]
# (wandb_project, what the hook says, the project it suggests)
BAD_WANDB = [
    ("a/b", "contains /, which W&B does not accept", "a-b"),
    ("what?", "contains ?, which W&B does not accept", "what-"),
    ("", "is empty, which W&B does not accept", "my-project"),
    ("p" * 129, "is longer than 128 characters, which W&B does not accept", "p" * 128),
]
VALID = {"project_slug": "ok-project", "package_name": "ok_pkg", "wandb_project": "ok-project"}


def _cases():
    for name, says, fix in BAD_PACKAGES:
        yield pytest.param(
            {"package_name": name},
            f"package_name {name!r} {says}",
            PACKAGE_FIX.format(fix),
            {"package_name": fix},
            id=f"package-{name}",
        )
    for slug, says, fix in BAD_SLUGS:
        yield pytest.param(
            {**VALID, "project_slug": slug},
            f"project_slug {slug!r} {says}",
            f"Type e.g. {fix!r}.",
            {**VALID, "project_slug": fix},
            id=f"slug-{slug}",
        )
    for project, says, fix in BAD_WANDB:
        yield pytest.param(
            {"wandb_project": project},
            f"wandb_project {project!r} {says}",
            f"Type e.g. {fix!r}.",
            {"wandb_project": fix},
            id=f"wandb-{project[:10] or 'empty'}",
        )


def _leftovers(tmp_path, out):
    """Everything under ``tmp_path`` a refused bake left: in the output dir or next to it."""
    inside = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    beside = sorted(p.name for p in tmp_path.iterdir() if p.name not in {"out", "cc"})
    return inside + beside


@pytest.mark.parametrize(("answers", "message", "fix", "fixed"), list(_cases()))
def test_bad_answer_is_refused_with_a_fix(tmp_path, capfd, answers, message, fix, fixed):
    out = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake(REPO_ROOT, out, tmp_path / "cc", extra_context=answers)
    stderr = capfd.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"ERROR: {message}"), stderr
    assert errors[0].endswith(f" {fix}"), stderr

    # the suggestion is itself an answer the template accepts
    project = bake(REPO_ROOT, out, tmp_path / "cc", extra_context=fixed)
    assert project.is_dir()
    assert all(json.loads((project / ".cookiecutter.json").read_text())[k] == v for k, v in fixed.items())


@pytest.mark.parametrize(("answers", "message", "fix", "fixed"), list(_cases()))
def test_bad_answer_writes_nothing(tmp_path, answers, message, fix, fixed):
    out = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake(REPO_ROOT, out, tmp_path / "cc", extra_context=answers)
    leftovers = _leftovers(tmp_path, out)
    if "/" in answers.get("project_slug", "").strip("./"):
        # cookiecutter creates out/bad/slug before any hook runs and removes only out/bad/slug
        # when the hook fails: an empty out/bad/ stays (a cookiecutter limitation), never a file.
        assert leftovers and all((out / p).is_dir() and not any((out / p).iterdir()) for p in leftovers), leftovers
    else:
        assert leftovers == []


def test_the_command_line_exits_non_zero_and_says_why(tmp_path):
    """What a user sees: ``cookiecutter <repo> --no-input package_name=class`` fails with the hint."""
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(REPO_ROOT), "--no-input", "-o", str(out), "package_name=class"],
        env={**os.environ, "COOKIECUTTER_CONFIG": str(write_user_config(tmp_path / "cc"))},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ERROR: package_name 'class' is a Python keyword. " + PACKAGE_FIX.format("my_class") in result.stderr
    assert _leftovers(tmp_path, out) == []


def test_every_problem_is_reported_at_once(tmp_path, capfd):
    """A slug with a '/' also spoils the package and W&B names derived from it: all three are named."""
    out = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake(REPO_ROOT, out, tmp_path / "cc", extra_context={"project_slug": "../x"})
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR: ")]
    assert [re.match(r"ERROR: (\w+) ", line).group(1) for line in errors] == [
        "project_slug",
        "package_name",
        "wandb_project",
    ]
    assert _leftovers(tmp_path, out) == []


def test_refused_rebake_keeps_the_existing_project(tmp_path, capfd):
    """With --overwrite-if-exists a refused bake must not delete the project it would overwrite."""
    out = tmp_path / "out"
    project = bake(REPO_ROOT, out, tmp_path / "cc", extra_context={"project_slug": "keep-me", "package_name": "keep_me"})
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    with pytest.raises(FailedHookException):
        bake(
            REPO_ROOT,
            out,
            tmp_path / "cc",
            overwrite_if_exists=True,
            extra_context={"project_slug": "keep-me", "package_name": "json"},
        )
    assert "is a standard-library module" in capfd.readouterr().err
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


GOOD = {
    "project_name": "Spam Detector",
    "package_name": "spam_detector",
    "author": "Ada Lovelace",
    "description": "Flags unwanted mail",
    "wandb_entity": "acme",
}


def test_good_answers_are_recorded_exactly(tmp_path):
    project = bake(REPO_ROOT, tmp_path / "out", tmp_path / "cc", extra_context=GOOD)
    assert project == tmp_path / "out" / "spam-detector"
    recorded = check_project(project, package="spam_detector", slug="spam-detector")
    assert recorded == {
        **GOOD,
        "project_slug": "spam-detector",  # derived from project_name
        "wandb_project": "spam-detector",  # derived from project_slug
        "task": "text_classification",
    }
    assert set(recorded) == answer_keys()
    assert not [key for key in recorded if key.startswith("_")]
    text = (project / ".cookiecutter.json").read_text(encoding="utf-8")
    assert not re.search(r'"(/|[A-Za-z]:\\\\)', text), f"absolute path in .cookiecutter.json:\n{text}"
    assert str(REPO_ROOT) not in text and str(tmp_path) not in text


def test_good_answers_reach_the_config(tmp_path):
    project = bake(REPO_ROOT, tmp_path / "out", tmp_path / "cc", extra_context=GOOD)
    text = (project / "configs" / "default.yaml").read_text(encoding="utf-8")
    assert re.search(r"^\s*entity: \"?acme\"?\s", text, re.M), "default.yaml has no `entity: acme`"
    config = yaml.safe_load(text)
    logger = config["trainer"]["logger"]
    assert logger["class_path"] == "spam_detector.wandb_logger.WandbLogger"
    assert logger["init_args"]["entity"] == "acme"
    assert logger["init_args"]["project"] == "spam-detector"
    class_paths = [cb["class_path"] for cb in config["trainer"]["callbacks"]]
    assert "spam_detector.callbacks.GradNormMonitor" in class_paths
    # every class path into the package names a module of the project that defines or exports it
    ours = [p for p in [logger["class_path"], *class_paths] if p.startswith("spam_detector.")]
    for class_path in ours:
        module, name = class_path.rsplit(".", 1)
        base = project / "src" / module.replace(".", "/")
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        assert source.is_file(), f"{class_path}: no module {module} in the project"
        assert re.search(rf"\b(class|def) {name}\b|\bimport\b.*\b{name}\b", source.read_text()), class_path
    assert "sentiment_classifier" not in text and "sentiment-classifier" not in text, "a default answer leaked in"


def test_default_answers(tmp_path):
    project = bake(REPO_ROOT, tmp_path / "out", tmp_path / "cc")
    recorded = check_project(project, slug="sentiment-classifier")
    defaults = template_prompts()
    assert recorded["project_name"] == defaults["project_name"]
    assert recorded["wandb_entity"] == ""
    config = yaml.safe_load((project / "configs" / "default.yaml").read_text(encoding="utf-8"))
    assert config["trainer"]["logger"]["init_args"]["entity"] is None  # empty answer: the user's default entity


def test_unicode_project_name_gives_ascii_names(tmp_path):
    project = bake(REPO_ROOT, tmp_path / "out", tmp_path / "cc", extra_context={"project_name": "Détecteur de Spam"})
    recorded = check_project(project, package="detecteur_de_spam", slug="detecteur-de-spam")
    assert recorded["project_name"] == "Détecteur de Spam"


# Answers the hook accepts must reach the files unchanged, whatever YAML or Python make of the characters.
@pytest.mark.parametrize(
    "answers",
    [
        pytest.param({"wandb_project": "spam-2"}, id="plain"),
        pytest.param({"wandb_project": "2024"}, id="number"),
        pytest.param({"wandb_project": "true"}, id="boolean"),
        pytest.param({"wandb_project": "[exp]"}, id="flow-list"),
        pytest.param({"wandb_project": "@home"}, id="reserved"),
        pytest.param({"wandb_entity": "null"}, id="entity-null"),
    ],
)
def test_wandb_answers_reach_the_yaml_unchanged(tmp_path, answers):
    project = bake(REPO_ROOT, tmp_path / "out", tmp_path / "cc", extra_context=answers)
    init_args = yaml.safe_load((project / "configs" / "default.yaml").read_text())["trainer"]["logger"]["init_args"]
    for key, value in answers.items():
        assert init_args[key.removeprefix("wandb_")] == value


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param({"description": r"Reads mail from C:\Users\me"}, id="backslash"),
        pytest.param({"description": 'Says "hi"'}, id="trailing-quote"),
    ],
)
def test_free_text_answers_keep_the_python_valid(tmp_path, answers):
    project = bake(REPO_ROOT, tmp_path / "out", tmp_path / "cc", extra_context=answers)
    check_project(project)  # compiles every .py


def test_bad_wandb_entity_is_refused(tmp_path, capfd):
    with pytest.raises(FailedHookException):
        bake(REPO_ROOT, tmp_path / "out", tmp_path / "cc", extra_context={"wandb_entity": "my team"})
    assert "ERROR: wandb_entity 'my team' contains a space, which W&B does not accept. Type e.g. 'my-team'" in (
        capfd.readouterr().err
    )
