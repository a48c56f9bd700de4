"""The tuning plan file (``configs/tune.yaml``) read into a :class:`~.plan.Plan`, with errors that name the line.

Kept apart from the plan's logic: this module knows YAML and the config being tuned, the plan knows neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .plan import BATCH_SIZE, LR, Knob, Plan

KNOB_KEYS = {"name", "arg", "try", "ladder", "instead", "options", "default"}
TOP_KEYS = {"trials", "min_improvement", "preflight", "batch_size", "knobs", "pruning", "search", "seeds"}


class PlanError(ValueError):
    """A mistake in the plan file, with where it is."""


def lookup(config: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    """``(found, value)`` of ``model.dropout`` in a resolved config."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def read_settings(path: Path) -> dict[str, Any]:
    """The plan file as a dict, its top-level keys checked."""
    if not path.is_file():
        raise PlanError(f"{path}: no such plan file; `tune` reads the knobs and ladders from configs/tune.yaml "
                        "(or --plan FILE).")
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise PlanError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(settings, dict):
        raise PlanError(f"{path}: expected a mapping (trials:, knobs:, ...), got {type(settings).__name__}.")
    unknown = sorted(set(settings) - TOP_KEYS)
    if unknown:
        raise PlanError(f"{path}: unknown key(s) {', '.join(unknown)}; the plan has {', '.join(sorted(TOP_KEYS))}.")
    return settings


def build_plan(settings: dict[str, Any], config: dict[str, Any], maximize: bool, where: str) -> Plan:
    """The plan of ``settings`` for ``config`` (the resolved config being tuned: each knob's default is read
    from it, and a knob naming an option the config does not have is refused before any trial runs)."""
    batch = settings.get("batch_size") or {}
    knobs = []
    for i, entry in enumerate(settings.get("knobs") or []):
        at = f"{where}: knobs[{i}]"
        if not isinstance(entry, dict) or "name" not in entry or "arg" not in entry:
            raise PlanError(f"{at}: each knob needs name: and arg: (e.g. name: dropout, arg: model.dropout, "
                            "ladder: [0.1, 0.2]).")
        unknown = sorted(set(entry) - KNOB_KEYS)
        if unknown:
            raise PlanError(f"{at} ({entry['name']}): unknown key(s) {', '.join(unknown)}; a knob has "
                            f"{', '.join(sorted(KNOB_KEYS))}.")
        options = {str(k): tuple(str(a) for a in v) for k, v in (entry.get("options") or {}).items()}
        if options:
            default = str(entry.get("default", "config"))
            options.setdefault(default, ())
        else:
            found, default = lookup(config, entry["arg"])
            if not found:
                section = entry["arg"].split(".")[0]
                choices = ", ".join(sorted((config.get(section) or {}).keys())) if isinstance(config.get(section), dict) else ""
                raise PlanError(f"{at} ({entry['name']}): {entry['arg']} is not an option of the tuned config"
                                + (f"; {section} has {choices}" if choices else "") + ".")
        values = [*(entry.get("try") or []), *(entry.get("ladder") or []), *((entry.get("instead") or {}).values())]
        if not values:
            raise PlanError(f"{at} ({entry['name']}): give the values to try (try: [...]) or a ladder (ladder: [...]).")
        if options:
            missing = [str(v) for v in values if str(v) not in options]
            if missing:
                raise PlanError(f"{at} ({entry['name']}): {', '.join(missing)} not among its options "
                                f"({', '.join(options)}).")
        if entry["arg"] in (LR, BATCH_SIZE):
            raise PlanError(f"{at}: {entry['arg']} is set by stages 1 and 2 (the LR finder, the batch sizes).")
        # keys as written (a study stores its plan as JSON, which turns 0.4 into "0.4")
        instead = {yaml.safe_load(str(k)): v for k, v in (entry.get("instead") or {}).items()}
        knobs.append(Knob(str(entry["name"]), str(entry["arg"]), default,
                          tuple(entry.get("try") or ()), tuple(entry.get("ladder") or ()), instead, options))
    sizes = tuple(int(size) for size in batch.get("try", (64, 128, 256)))
    if batch.get("scale_lr", "linear") not in ("linear", "none"):
        raise PlanError(f"{where}: batch_size.scale_lr must be linear or none, got {batch.get('scale_lr')!r}.")
    return Plan(batch_sizes=sizes, min_steps_per_epoch=int(batch.get("min_steps_per_epoch", 10)),
                scale_lr=str(batch.get("scale_lr", "linear")), knobs=tuple(knobs),
                min_improvement=float(settings.get("min_improvement", 0.0)), maximize=maximize)


def search_space(plan: Plan, settings: dict[str, Any], config: dict[str, Any]) -> dict[str, list[Any]]:
    """The space of ``--sampler tpe|random|grid``: the plan's LRs, batch sizes (with the config's) and every
    knob's values (its default first)."""
    lrs = [float(lr) for lr in (settings.get("search") or {}).get("lr", (3e-4, 1e-3, 3e-3, 1e-2))]
    found, size = lookup(config, BATCH_SIZE)
    sizes = sorted({*plan.batch_sizes, *([int(size)] if found and size else [])})
    space: dict[str, list[Any]] = {LR: lrs, BATCH_SIZE: sizes}
    for knob in plan.knobs:
        space[knob.arg] = knob.values()
    return space
