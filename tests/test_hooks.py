"""Bad answers are refused with a message saying what to type, and nothing is written; the post-gen
hook records exactly the answers.

The rules are pure functions of the answers (template/liandan_ext.py: ``answer_errors`` and the
``check_*`` and ``suggest_package`` it uses) and are tested as such, every bad answer and its fix.
A few real bakes prove that cookiecutter applies them: while it renders the answers (``__checked``
in template/cookiecutter.json, ``liandan_ext.check_answers``), before it creates the project folder,
one bad answer of each kind; and in the pre-gen hook for a replay, which skips that rendering. The
other tests bake the real template to check what the good answers become."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from tests.bake_helpers import (
    DEFAULT_SLUG,
    REPO_ROOT,
    TEMPLATE_DIR,
    answer_keys,
    bake,
    check_project,
    template_prompts,
    write_user_config,
)


def _load_rules():
    """template/liandan_ext.py, loaded from its file under a private name.

    Not ``import liandan_ext`` from a ``sys.path`` entry: cookiecutter imports the module of the
    template it bakes, and a ``liandan_ext`` left in ``sys.modules`` by this test would stand in
    for the copy of another checkout or archive baked later in the same process."""
    spec = importlib.util.spec_from_file_location("liandan_ext_rules", TEMPLATE_DIR / "liandan_ext.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ext = _load_rules()

PACKAGE_FIX = "Type a different package_name, e.g. {!r}."
NAME_LIMIT = 100  # the longest project_slug and package_name (liandan_ext.NAME_LIMIT)

# (package_name, what the check says, the name it suggests instead)
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
    ("p" * 101, "is longer than 100 characters", "p" * 100),
]
# (project_slug, what the check says, the slug it suggests)
BAD_SLUGS = [
    ("bad/slug", "is not a usable folder name", "bad-slug"),
    ("../x", "is not a usable folder name", "x"),
    ("-x", "is not a usable folder name", "x"),
    ("..", "is not a usable folder name", "my-project"),
    ("a" * 101, "is longer than 100 characters", "a" * 100),
    ("a" * 300, "is longer than 100 characters", "a" * 100),  # raised "OSError: File name too long"
]
# (wandb_project, what the check says, the project it suggests)
BAD_WANDB = [
    ("a/b", "contains /, which W&B does not accept", "a-b"),
    ("what?", "contains ?, which W&B does not accept", "what-"),
    ("", "is empty, which W&B does not accept", "my-project"),
    ("p" * 129, "is longer than 128 characters, which W&B does not accept", "p" * 128),
]
# (wandb_entity, what the check says, the entity it suggests)
BAD_ENTITIES = [
    ("my team", "contains a space, which W&B does not accept", "my-team"),
    ("a\tb", "contains a tab, which W&B does not accept", "a-b"),
    ("acme/ml", "contains /, which W&B does not accept", "acme-ml"),
]
VALID = {"project_slug": "ok-project", "package_name": "ok_pkg", "wandb_project": "ok-project", "wandb_entity": ""}
CHECKS = {
    "project_slug": ext.check_slug,
    "package_name": ext.check_package,
    "wandb_project": ext.check_wandb_project,
    "wandb_entity": ext.check_wandb_entity,
}


def _shown(value: str) -> str:
    """How a message quotes an answer: whole up to 40 characters, else its start and its length."""
    return repr(value) if len(value) <= 40 else f"{value[:24]!r}... ({len(value)} characters)"


def _id(value: str) -> str:
    value = value.encode("unicode_escape").decode("ascii")
    return value if len(value) <= 12 else f"{value[:4]}x{len(value)}"


def _cases():
    kinds = [
        ("package_name", "package", BAD_PACKAGES, PACKAGE_FIX),
        ("project_slug", "slug", BAD_SLUGS, "Type e.g. {!r}."),
        ("wandb_project", "wandb", BAD_WANDB, "Type e.g. {!r}."),
        ("wandb_entity", "entity", BAD_ENTITIES, "Type e.g. {!r} (or leave it empty)."),
    ]
    for key, kind, cases, fix in kinds:
        for value, says, fixed in cases:
            yield pytest.param(key, value, f"{key} {_shown(value)} {says}", fix.format(fixed), fixed,
                               id=f"{kind}-{_id(value) or 'empty'}")


# ------------------------------------------------------------------------- the rules, as functions
@pytest.mark.parametrize(("key", "value", "message", "fix", "fixed"), list(_cases()))
def test_bad_answer_gets_one_message_with_a_fix_the_rules_accept(key, value, message, fix, fixed):
    errors = ext.answer_errors({**VALID, key: value})
    assert len(errors) == 1, errors
    assert errors[0].startswith(message), errors
    assert errors[0].endswith(f" {fix}"), errors
    assert CHECKS[key](value) == errors[0]  # the answer's own rule says it
    # the suggestion is itself an answer the rules accept
    assert CHECKS[key](fixed) == ""
    assert ext.answer_errors({**VALID, key: fixed}) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("package_name", "ok_pkg"),
        ("package_name", "_private"),
        ("package_name", "p" * NAME_LIMIT),
        ("project_slug", "My.Project_2"),
        ("project_slug", "a" * NAME_LIMIT),
        ("wandb_project", "[exp]@home"),
        ("wandb_project", "p" * 128),
        ("wandb_entity", ""),
        ("wandb_entity", "acme-ml"),
    ],
)
def test_good_answers_pass_every_rule(key, value):
    assert CHECKS[key](value) == ""
    assert ext.answer_errors({**VALID, key: value}) == []


def test_the_name_limit_is_the_templates():
    assert ext.NAME_LIMIT == NAME_LIMIT


@pytest.mark.parametrize(
    ("name", "suggested"),
    [
        ("class", "my_class"),
        ("json", "my_json"),
        ("tests", "my_tests"),
        ("2fast", "project_2fast"),
        ("My Pkg!", "my_pkg"),
        ("--", "project"),
        ("", "project"),
        ("p" * 150, "p" * NAME_LIMIT),
        ("9" * 150, ("project_" + "9" * 150)[:NAME_LIMIT]),
        ("pkg" + "_" * 120 + "x", "pkg"),  # cut to the limit, then the cut's trailing underscores
    ],
)
def test_suggest_package_gives_a_name_the_package_rule_accepts(name, suggested):
    assert ext.suggest_package(name) == suggested
    assert ext.check_package(suggested) == ""


def test_every_problem_is_named_at_once():
    """A slug with a '/' also spoils the package and W&B names derived from it (template/cookiecutter.json
    derives them from the slug): one message each, in the prompts' order."""
    slug = "../x"
    errors = ext.answer_errors({"project_slug": slug, "package_name": slug.replace("-", "_"),
                                "wandb_project": slug, "wandb_entity": "a b"})
    assert [error.split(" ", 1)[0] for error in errors] == ["project_slug", "package_name", "wandb_project",
                                                            "wandb_entity"]


def test_check_answers_raises_one_error_line_per_problem():
    assert ext.check_answers(VALID) == ""
    with pytest.raises(FailedHookException) as refused:
        ext.check_answers({**VALID, "package_name": "json", "wandb_entity": "my team"})
    assert isinstance(refused.value, ext.InvalidAnswer)
    lines = str(refused.value).splitlines()
    assert lines == [f"ERROR: {message}" for message in ext.answer_errors({**VALID, "package_name": "json",
                                                                           "wandb_entity": "my team"})]
    assert len(lines) == 2


def test_missing_answers_are_checked_as_empty():
    """A context without a key (an old replay) is judged as if the answer were empty."""
    errors = ext.answer_errors({})
    assert [error.split(" ", 1)[0] for error in errors] == ["project_slug", "package_name", "wandb_project"]


# ------------------------------------------------------------------------- wired into cookiecutter
def _refusal(tmp_path, answers, **kwargs) -> list[str]:
    """Bake with ``answers``, which must be refused; returns the refusal's ``ERROR: …`` lines."""
    with pytest.raises(FailedHookException) as refused:
        bake(REPO_ROOT, tmp_path / "out", tmp_path / "cc", extra_context=answers, **kwargs)
    lines = str(refused.value).splitlines()
    assert lines and all(line.startswith("ERROR: ") for line in lines), lines
    return lines


def _run_cookiecutter(tmp_path, out, *args, template=REPO_ROOT):
    """The ``cookiecutter`` command as a user types it, with this test's user config."""
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(template), "--no-input", "-o", str(out), *args],
        env={**os.environ, "COOKIECUTTER_CONFIG": str(write_user_config(tmp_path / "cc"))},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _leftovers(tmp_path, out):
    """Everything under ``tmp_path`` a refused bake left: in the output dir or next to it."""
    inside = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    beside = sorted(p.name for p in tmp_path.iterdir() if p.name not in {"out", "cc"})
    return inside + beside


@pytest.mark.parametrize(
    ("answers", "refused"),
    [
        pytest.param({"package_name": "class"}, ["package_name"], id="package"),
        # the package and W&B names derived from the slug are spoilt too: cookiecutter renders them first
        pytest.param({"project_slug": "../x"}, ["project_slug", "package_name", "wandb_project"], id="slug"),
        pytest.param({"wandb_project": "a/b"}, ["wandb_project"], id="wandb-project"),
        pytest.param({"wandb_entity": "my team"}, ["wandb_entity"], id="wandb-entity"),
    ],
)
def test_a_bad_answer_is_refused_before_anything_is_written(tmp_path, capfd, answers, refused):
    """One bad answer of each kind: the rules' messages, and not even the empty out/bad/ that cookiecutter
    leaves when a pre-gen hook refuses the slug bad/slug."""
    out = tmp_path / "out"
    errors = _refusal(tmp_path, answers)
    assert [re.match(r"ERROR: (\w+) ", line).group(1) for line in errors] == refused
    assert len(errors) == len(refused)
    key, value = next(iter(answers.items()))
    assert errors[0] == f"ERROR: {CHECKS[key](value)}"
    assert _leftovers(tmp_path, out) == []
    assert "Traceback" not in capfd.readouterr().err  # refused before any hook ran (cookiecutter logs hook failures)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(
            "project_slug=foo/bar",
            "ERROR: project_slug 'foo/bar' is not a usable folder name (letters, digits, '.', '_', '-', "
            "starting with a letter or digit). Type e.g. 'foo-bar'.",
            id="slash",
        ),
        pytest.param(
            "project_slug=" + "a" * 300,
            f"ERROR: project_slug {_shown('a' * 300)} is longer than 100 characters. Type e.g. {'a' * 100!r}.",
            id="too-long",
        ),
    ],
)
def test_the_command_line_exits_non_zero_and_says_why(tmp_path, answer, error):
    """What a user sees: ``cookiecutter <repo> --no-input <bad answer>`` fails with the hint, no traceback,
    and leaves the output folder empty (the slug 'foo/bar' used to leave out/foo/, 300 characters an
    ``OSError: File name too long``)."""
    out = tmp_path / "out"
    result = _run_cookiecutter(tmp_path, out, answer)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    assert error in lines, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert all(line.startswith("ERROR: ") for line in lines), lines  # the messages and nothing else
    assert _leftovers(tmp_path, out) == []


def test_a_long_project_name_gives_names_that_fit(tmp_path):
    """The slug derived from a 300-character project name is cut to 100 characters (at a word), and
    the package and W&B project derived from it follow."""
    name = "A Very Long Project Name " * 12  # 300 characters
    project = bake(REPO_ROOT, tmp_path / "out", tmp_path / "cc", extra_context={"project_name": name})
    slug = project.name
    full = "-".join(name.lower().split())
    assert len(slug) <= NAME_LIMIT and full.startswith(slug) and full[len(slug)] == "-", slug
    recorded = check_project(project, package=slug.replace("-", "_"), slug=slug)
    assert recorded["project_name"] == name and recorded["wandb_project"] == slug


def test_a_long_project_name_on_the_command_line(tmp_path):
    """One word of 300 characters (no word boundary to cut at): the command makes a 100-character folder."""
    out = tmp_path / "out"
    result = _run_cookiecutter(tmp_path, out, "project_name=" + "a" * 300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [p.name for p in out.iterdir()] == ["a" * NAME_LIMIT]


def test_refused_rebake_keeps_the_existing_project(tmp_path):
    """With --overwrite-if-exists a refused bake must not delete the project it would overwrite."""
    out = tmp_path / "out"
    project = bake(REPO_ROOT, out, tmp_path / "cc", extra_context={"project_slug": "keep-me", "package_name": "keep_me"})
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    errors = _refusal(tmp_path, {"project_slug": "keep-me", "package_name": "json"}, overwrite_if_exists=True)
    assert "is a standard-library module" in errors[0]
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_the_pre_gen_hook_checks_a_replay(tmp_path, capfd):
    """A replay holds ``__checked`` already rendered, so cookiecutter skips the check: the hook refuses
    the bad answer, and cookiecutter removes the project folder it had created."""
    out = tmp_path / "out"
    config = write_user_config(tmp_path / "cc")
    bake(TEMPLATE_DIR, tmp_path / "first", tmp_path / "cc")
    replay = json.loads((tmp_path / "cc" / "replay" / "template.json").read_text(encoding="utf-8"))
    assert "__checked" in replay["cookiecutter"]
    replay["cookiecutter"]["package_name"] = "json"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(replay), encoding="utf-8")
    out.mkdir()
    with pytest.raises(FailedHookException):
        cookiecutter(str(TEMPLATE_DIR), replay=str(edited), output_dir=str(out), config_file=str(config))
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR: ")]
    assert errors == [
        "ERROR: package_name 'json' is a standard-library module; the project would shadow it. "
        + PACKAGE_FIX.format("my_json")
    ]
    assert list(out.iterdir()) == []


def test_bake_from_a_git_archive_zip(tmp_path, monkeypatch):
    """The README's zip: ``git archive --format zip --prefix liandan/ -o liandan.zip HEAD``.

    The working tree's tracked files go in (``git stash create`` makes a commit of them without
    touching the checkout or the stash list), so uncommitted changes are tested too; untracked files
    are not, so the vendored code is compared with the archive's own copy. (Without ``--prefix`` the
    zip fails: cookiecutter takes its first entry, here ``.ci/``, for the template's top folder.)
    """
    if subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, check=False).returncode:
        pytest.skip("not a git checkout with a commit")
    git = ["git", "-c", "user.name=liandan tests", "-c", "user.email=tests@localhost", "-C", str(REPO_ROOT)]
    tree = subprocess.run([*git, "stash", "create"], capture_output=True, text=True, check=True).stdout.strip()
    archive = tmp_path / "liandan.zip"
    subprocess.run(
        [*git, "archive", "--format", "zip", "--prefix", "liandan/", "-o", str(archive), tree or "HEAD"], check=True
    )
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(unpacked)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # cookiecutter unzips into mkdtemp()
    project = bake(archive, tmp_path / "out", tmp_path / "cc")
    check_project(project, slug=DEFAULT_SLUG, source_root=unpacked / "liandan")


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
    assert re.search(r"^\s*entity: \"?acme\"?\s", text, re.MULTILINE), "default.yaml has no `entity: acme`"
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
    assert template_prompts()["task"][0] == recorded["task"] == "text_classification"  # the first choice
    assert recorded["project_name"] == "Sentiment Classifier"  # the default name follows the task
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
