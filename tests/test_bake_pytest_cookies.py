"""Bakes through pytest-cookies' ``cookies`` fixture: the repository root and its template folder.

(pytest-cookies reads ``<template>/cookiecutter.json`` itself, so it cannot take a zip or
``--directory``; those forms are covered with cookiecutter's API in test_bake.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bake_helpers import REPO_ROOT, TEMPLATE_DIR, check_project


@pytest.mark.parametrize("template", [REPO_ROOT, TEMPLATE_DIR], ids=["repo-root", "template-folder"])
def test_cookies_fixture_bakes_a_complete_project(cookies, template, monkeypatch):
    # pytest-cookies renders the prompts itself before calling cookiecutter, without the import
    # path cookiecutter sets up for local extensions; cookiecutter's own run does not need this.
    monkeypatch.syspath_prepend(str(TEMPLATE_DIR))
    result = cookies.bake(template=str(template), extra_context={"project_name": "Review Rater"})
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    project = Path(result.project_path)
    assert project.name == "review-rater"
    check_project(project, package="review_rater", slug="review-rater")


def test_cookies_fixture_reports_a_refused_answer(cookies):
    result = cookies.bake(template=str(REPO_ROOT), extra_context={"package_name": "torch"})
    assert result.exit_code != 0
    assert "package_name 'torch' is the name of a module the project depends on" in str(result.exception)
    assert result.project_path is None
