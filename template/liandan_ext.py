"""Jinja extension that tells the hooks where the liandan repository root is.

The root is computed from this file's own location, which is right for local paths
(absolute or relative), ``--directory template``, ``gh:`` clones and zip archives alike,
unlike ``cookiecutter._repo_dir`` (relative for relative paths, absent under cruft).
"""

import sys
from pathlib import Path

from jinja2.ext import Extension


class RepoRootExtension(Extension):
    """Exposes ``liandan_repo_root`` (absolute path of the repository) to templates and hooks."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals["liandan_repo_root"] = str(Path(__file__).resolve().parent.parent)
        # cookiecutter imports this module from the template folder it is baking; forget it so that
        # the next bake in the same process (another checkout, another zip) imports its own copy.
        sys.modules.pop(__name__, None)
