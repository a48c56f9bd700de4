"""``tune --export-wandb-sweep FILE``: the same search space as a W&B sweep, for users with a W&B server.

W&B sweeps need W&B's server (there is no offline mode), so they are an export here, never a dependency.
The sweep runs ``fit --config <study folder>/base.yaml ${args}``: the config without its LR finder, which
would overwrite the swept ``model.lr``. Knobs with named options (several arguments per value) are left
out: a W&B parameter is one ``--name=value`` argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..trials import PACKAGE
from .command import value_arg, write_base, write_text

METHODS = {"autopilot": "bayes", "tpe": "bayes", "random": "random", "grid": "grid"}


def sweep_config(setup: dict[str, Any], base: Path) -> dict[str, Any]:
    """The sweep as a dict: ``program``, ``method``, ``metric``, ``parameters``, ``command``."""
    parameters = {}
    for arg, values in setup["space"].items():
        if arg in setup["options"]:
            continue
        # `${args}` passes `--name=value`; `null` is how the CLI reads None
        parameters[arg] = {"values": [value_arg(v) if v is None or isinstance(v, bool) else v for v in values]}
    return {"program": PACKAGE, "method": METHODS[setup["mode"]],
            "metric": {"name": setup["monitor"], "goal": "maximize" if setup["maximize"] else "minimize"},
            "parameters": parameters,
            "command": ["${env}", "${interpreter}", "-m", PACKAGE, "fit", "--config", str(base), "${args}"]}


def write_sweep(path: Path, setup: dict[str, Any], folder: Path) -> Path:
    base = write_base(folder, setup)
    left_out = ", ".join(setup["options"]) or "none"
    header = (f"# W&B sweep of the space `{PACKAGE} tune --sampler ...` searches; knobs with named options left out: "
              f"{left_out}.\n# wandb sweep {path}; then wandb agent <id> (needs a W&B server and login)\n")
    write_text(path, header + yaml.safe_dump(sweep_config(setup, base), sort_keys=False))
    return path
