"""Ensembles as plain numbers: averaged probabilities, their scores and calibration, and the manifest (T60, T61).

An ensemble averages the members' *predicted probabilities* (never their weights): the seed
ensemble (T61, the CLI's ``ensemble`` command), the snapshot ensemble of one cyclical run
(T60, :class:`~.snapshot.SnapshotEnsemble`) and any list of checkpoints. A *manifest*
(``ensemble.yaml``) lists the members' checkpoints, relative to the manifest's folder, with
optional weights; ``test``/``predict --ensemble`` read it.

Example::

    # ensemble.yaml, written by the `ensemble` command or SnapshotEnsemble
    kind: seed                  # seed | snapshot | checkpoints
    members:
      - {checkpoint: ../r1/checkpoints/best-epoch=04.ckpt, weight: 1.0, seed: 1}
      - {checkpoint: ../r2/checkpoints/best-epoch=06.ckpt, weight: 1.0, seed: 2}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import yaml
from torchmetrics.functional.classification import multiclass_calibration_error, multiclass_f1_score

from .wandb_io import write_atomically

MANIFEST = "ensemble.yaml"
KINDS = ("seed", "snapshot", "checkpoints")
ECE_BINS = 15  # equal-width confidence bins (Guo et al. 2017)


@dataclass(frozen=True)
class Member:
    """One member of an ensemble: its checkpoint and its weight in the average."""

    checkpoint: Path
    weight: float = 1.0


def average_probabilities(members: Sequence[np.ndarray], weights: Optional[Sequence[float]] = None) -> np.ndarray:
    """The (weighted) mean of the members' probabilities, each ``[N, C]``; rows still sum to 1.

    Raises:
        ValueError: no members, members of different shapes, or weights that do not match or sum to 0.
    """
    if not members:
        raise ValueError("an ensemble needs at least one member.")
    shapes = {np.shape(m) for m in members}
    if len(shapes) != 1:
        raise ValueError(f"members predicted arrays of different shapes {sorted(shapes)}: they must see the same "
                         "examples in the same order with the same classes.")
    weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
    if len(weights) != len(members) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"need one non-negative weight per member ({len(members)}), not all 0; got {weights}.")
    stacked = np.stack([np.asarray(m, dtype=np.float64) for m in members])
    return np.tensordot(np.asarray(weights) / sum(weights), stacked, axes=1)


def scores(probabilities: np.ndarray, labels: Sequence[int], bins: int = ECE_BINS) -> dict[str, float]:
    """Accuracy, macro F1, negative log-likelihood and expected calibration error (top label, ``bins`` bins)."""
    probs = torch.as_tensor(np.asarray(probabilities), dtype=torch.float64)
    target = torch.as_tensor(list(labels), dtype=torch.long)
    classes = probs.shape[1]
    return {
        "acc": float((probs.argmax(1) == target).double().mean()),
        "f1": float(multiclass_f1_score(probs, target, classes, average="macro")),
        "nll": float(torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), target)),
        "ece": float(multiclass_calibration_error(probs.float(), target, classes, n_bins=bins, norm="l1")),
    }


def reliability(probabilities: np.ndarray, labels: Sequence[int], bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per confidence bin: the mean confidence, the accuracy and the share of examples (a reliability diagram)."""
    probs = np.asarray(probabilities)
    confidence, predicted = probs.max(1), probs.argmax(1)
    correct = predicted == np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out: dict[str, list[float]] = {"confidence": [], "accuracy": [], "share": []}
    for b in range(bins):
        inside = which == b
        if inside.any():
            out["confidence"].append(float(confidence[inside].mean()))
            out["accuracy"].append(float(correct[inside].mean()))
            out["share"].append(float(inside.mean()))
    return out


def write_manifest(path: Path, kind: str, members: Sequence[dict[str, Any]], **extra: Any) -> Path:
    """Write ``members`` (dicts with ``checkpoint`` and optional ``weight``, ``seed``, ``run``, ...) as a manifest.

    Checkpoint paths are stored relative to the manifest's folder, so a moved run folder keeps working.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}.")
    path = Path(path)
    rows = []
    for member in members:
        row = dict(member)
        row["checkpoint"] = os.path.relpath(Path(row["checkpoint"]).resolve(), path.parent.resolve())
        rows.append(row)
    text = yaml.safe_dump({"kind": kind, **extra, "members": rows}, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda partial: partial.write_text(text, encoding="utf-8"))
    return path


def read_manifest(path: Path) -> list[Member]:
    """The members a manifest lists, with their checkpoints resolved against the manifest's folder.

    Raises:
        FileNotFoundError: the manifest or one of its checkpoints is missing (all missing ones named).
        ValueError: the file is not a manifest (no ``members`` list, a member without ``checkpoint``,
            a negative weight).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--ensemble {path}: no such file. The `ensemble` command and SnapshotEnsemble write "
                                f"{MANIFEST} into their run folder and print its path.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not YAML: {err}") from None
    rows = data.get("members") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path} is not an ensemble manifest: it needs a non-empty `members:` list of "
                         "{checkpoint: PATH, weight: W}.")
    members = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("checkpoint"):
            raise ValueError(f"{path}: member {i} has no `checkpoint:`.")
        try:
            weight = float(row.get("weight", 1.0))
        except (TypeError, ValueError):
            raise ValueError(f"{path}: member {i} has weight {row.get('weight')!r}; a weight is a number >= 0.") from None
        if not weight >= 0:
            raise ValueError(f"{path}: member {i} has a negative weight ({weight}).")
        members.append(Member((path.parent / str(row["checkpoint"])).resolve(), weight))
    if sum(m.weight for m in members) <= 0:
        raise ValueError(f"{path}: every member has weight 0; give at least one a positive weight.")
    check_members_exist(members, source=str(path))
    return members


def check_members_exist(members: Sequence[Member], source: str) -> None:
    """Raise ``FileNotFoundError`` naming every member checkpoint that is not a file."""
    missing = [str(m.checkpoint) for m in members if not m.checkpoint.is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: {len(missing)} member checkpoint(s) missing: {', '.join(missing)}")


def resolve_members(items: str | Sequence[str]) -> list[Member]:
    """``--ensemble`` values as members: one manifest (``.yaml``/``.yml``), or two or more checkpoint files.

    Raises:
        ValueError: a manifest mixed with checkpoints, or a single checkpoint (that is ``--ckpt_path``).
    """
    items = [items] if isinstance(items, str) else [str(item) for item in items]
    manifests = [item for item in items if Path(item).suffix in (".yaml", ".yml")]
    if manifests:
        if len(items) != 1:
            raise ValueError(f"--ensemble takes one manifest or a list of checkpoints, not both: {items}.")
        return read_manifest(Path(manifests[0]))
    if len(items) < 2:
        raise ValueError(f"--ensemble needs a manifest ({MANIFEST}) or at least two checkpoints, got {items}; one "
                         "checkpoint is --ckpt_path.")
    members = [Member(Path(item).resolve()) for item in items]
    check_members_exist(members, source="--ensemble")
    return members


def same_labels(labels: Sequence[Sequence[str]], names: Sequence[str]) -> list[str]:
    """The members' common label list; ``ValueError`` naming the first member that disagrees with the first."""
    first = list(labels[0])
    for name, these in zip(names[1:], labels[1:]):
        if list(these) != first:
            raise ValueError(f"ensemble members disagree on the labels: {names[0]} has {first}, {name} has "
                             f"{list(these)}. Members must be trained on the same classes.")
    return first
