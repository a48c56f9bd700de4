"""Ensembles through the CLI: ``{{ cookiecutter.package_name }} ensemble`` trains a seed ensemble (T61);
``test``/``predict --ensemble`` average the members' predicted probabilities (T60, T61).

``ensemble --config configs/default.yaml --members 5 [--workers 2] [any fit argument]`` runs
``fit`` once per seed (``seed_everything`` 1..N: weights, dropout and batch order; the data split
keeps ``data.seed``), every run a W&B run in one group, writes the manifest
``runs/<project>/<group>/ensemble.yaml`` and tests the ensemble in a summary run of the same group.

With ``--ensemble MANIFEST`` (or two or more checkpoints) ``test`` scores every member and the
ensemble on the test split: accuracy, macro F1, negative log-likelihood and expected calibration
error (``ensemble_test.json``/``.md`` and ``calibration_test.png`` in the run folder, the summary and a
table in W&B); ``predict`` writes the averaged probabilities. Each member uses its own checkpoint's
vocabulary or scaling; members must agree on the labels.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .callbacks.blend import blend_for, blended_probabilities, network_probabilities
from .callbacks.ensemble import MANIFEST, Member, average_probabilities, reliability, same_labels, scores, write_manifest
from .callbacks.notices import notice
from .callbacks.reporting import report_summary, wandb_media
from .callbacks.wandb_io import find_wandb_logger, run_directory, write_atomically
from .trials import Trial, config_files, fail, refuse, run_root, run_trials, write_result

SCORES = ("acc", "f1", "nll", "ece")


def member_probabilities(members: list[Member], datamodule: Any, model_class: type, split: str,
                         device: torch.device, state_of: Any) -> tuple[list[np.ndarray], list[str]]:
    """Each member's probabilities on ``split``, in the split's stored order, with the members' common labels.

    The data module takes each member's own state (vocabulary, scaling) before its member predicts. A member
    with a blend fitted for its checkpoint (``ClassicalBlend``, T63) predicts as ``predict --ckpt_path`` does:
    blended with its classical model.
    """
    probabilities, labels, blended = [], [], 0
    for member in members:
        datamodule.load_state_dict(state_of(str(member.checkpoint), datamodule))
        labels.append(list(datamodule.labels))
        same_labels(labels, [str(m.checkpoint) for m in members[:len(labels)]])
        model = model_class.load_from_checkpoint(str(member.checkpoint), map_location=device, weights_only=True)
        probs = network_probabilities(model.to(device), datamodule.ordered_loader(split))
        stored = blend_for(member.checkpoint)
        if stored is not None:
            probs = blended_probabilities(stored, probs, datamodule.split_inputs(split))
            blended += 1
        probabilities.append(probs)
    if blended:
        notice(__name__, f"ensemble: {blended} of {len(members)} members blended with their classical model (T63), "
                         "as predict --ckpt_path does for each.")
    return probabilities, labels[0]


def evaluate(trainer: Any, members: list[Member], datamodule: Any, model_class: type, state_of: Any) -> dict[str, Any]:
    """``test --ensemble``: every member's and the ensemble's scores on the test split, reported and saved."""
    run_dir = run_directory(trainer)  # on every rank: it may broadcast
    if not trainer.is_global_zero:
        return {}
    device = trainer.strategy.root_device
    probabilities, labels = member_probabilities(members, datamodule, model_class, "test", device, state_of)
    target = datamodule.split_labels("test")
    averaged = average_probabilities(probabilities, [m.weight for m in members])
    rows = [{"member": f"member {i + 1}", "checkpoint": str(m.checkpoint), "weight": m.weight,
             **scores(p, target)} for i, (m, p) in enumerate(zip(members, probabilities))]
    ensemble = {"member": "ensemble", "checkpoint": "", "weight": sum(m.weight for m in members), **scores(averaged, target)}
    result = {"split": "test", "examples": len(target), "labels": labels, "members": rows, "ensemble": ensemble}
    summary = {f"ensemble/test/{k}": ensemble[k] for k in SCORES}
    summary |= {f"ensemble/members/{k}_mean": float(np.mean([r[k] for r in rows])) for k in SCORES}
    summary |= {f"member{i + 1}/test/{k}": r[k] for i, r in enumerate(rows) for k in SCORES}
    summary["ensemble/members"] = len(members)
    report_summary(trainer, summary, run_dir)
    text = json.dumps(result, indent=1)
    write_atomically(run_dir / "ensemble_test.json", lambda partial: partial.write_text(text, encoding="utf-8"))
    markdown = markdown_table(rows + [ensemble])
    write_atomically(run_dir / "ensemble_test.md", lambda partial: partial.write_text(markdown, encoding="utf-8"))
    picture = calibration_figure(probabilities, averaged, target, run_dir / "calibration_test.png")
    if find_wandb_logger(trainer) is not None:
        import wandb

        table = wandb.Table(columns=["member", "weight", *SCORES],
                            data=[[r["member"], r["weight"], *(r[k] for k in SCORES)] for r in rows + [ensemble]])
        wandb_media(trainer, {"ensemble/test": table, "ensemble/calibration": wandb.Image(str(picture))})
    show(rows + [ensemble], run_dir)
    write_result({"run_dir": str(run_dir), **result})
    return result


def predict(trainer: Any, members: list[Member], datamodule: Any, model_class: type, state_of: Any) -> np.ndarray:
    """``predict --ensemble``: the averaged probabilities of the predicted inputs, in input order."""
    device = trainer.strategy.root_device
    probabilities, _ = member_probabilities(members, datamodule, model_class, "predict", device, state_of)
    return average_probabilities(probabilities, [m.weight for m in members])


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| | weight | accuracy | macro F1 | NLL | ECE |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['member']} | {row['weight']:g} | {row['acc']:.4f} | {row['f1']:.4f} | {row['nll']:.4f} "
                     f"| {row['ece']:.4f} |")
    return "\n".join(lines) + "\n"


def show(rows: list[dict[str, Any]], run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("", "accuracy", "macro F1", "NLL", "ECE", title=f"ensemble on the test split ({run_dir})")
    for row in rows:
        style = "bold" if row["member"] == "ensemble" else None
        table.add_row(row["member"], f"{row['acc']:.4f}", f"{row['f1']:.4f}", f"{row['nll']:.4f}", f"{row['ece']:.4f}",
                      style=style)
    Console().print(table)


def calibration_figure(members: list[np.ndarray], averaged: np.ndarray, labels: list[int], path: Path) -> Path:
    """A reliability diagram: accuracy against confidence per bin, each member (thin) and the ensemble (thick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    for i, probs in enumerate(members):
        bins = reliability(probs, labels)
        ax.plot(bins["confidence"], bins["accuracy"], color="tab:blue", alpha=0.35, linewidth=1,
                label="members" if i == 0 else None, marker=".")
    bins = reliability(averaged, labels)
    ece = scores(averaged, labels)["ece"]
    ax.plot(bins["confidence"], bins["accuracy"], color="tab:red", linewidth=2.5, marker="o", label=f"ensemble (ECE {ece:.3f})")
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("calibration on the test split")
    ax.legend(loc="upper left")
    fig.tight_layout()
    write_atomically(path, lambda partial: fig.savefig(partial, format="png", dpi=110))
    plt.close(fig)
    return path


# ------------------------------------------------------------------ the `ensemble` command (T61)
def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="{{ cookiecutter.package_name }} ensemble",
        description="Train a seed ensemble (T61): `fit` once per seed, then test the ensemble. Every other argument "
                    "(--config, --model.*, --data.*, --trainer.*) goes to each fit unchanged.")
    parser.add_argument("--members", type=int, default=5, help="members, seeds first_seed.. (default 5)")
    parser.add_argument("--workers", type=int, default=1,
                        help="members trained at once, as separate processes (default 1: one after another)")
    parser.add_argument("--first_seed", type=int, default=1, help="seed of the first member (default 1)")
    parser.add_argument("--group", default=None, help="W&B group and folder name (default ensemble-<date-time>)")
    return parser


def main(argv: list[str], default_save_dir: str, default_project: str, check_presets: Any) -> None:
    """``{{ cookiecutter.package_name }} ensemble ...``: train the members, write the manifest, test the ensemble.

    ``check_presets`` is the CLI's check that a preset is not given first (before N members each refuse it)."""
    options, fit_args = parser().parse_known_args(argv)
    if options.members < 2:
        raise ValueError(f"an ensemble needs --members >= 2, got {options.members}.")
    if options.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {options.workers}.")
    refuse(fit_args, ("--seed_everything", "--ckpt_path", "--ensemble"),
           "is set by the ensemble command itself (members differ by seed only); leave it out.")
    check_presets(config_files(fit_args))
    group = options.group or f"ensemble-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    folder = run_root(fit_args, default_save_dir, default_project) / group
    seeds = list(range(options.first_seed, options.first_seed + options.members))
    trials = [Trial(f"member-{seed}", ["fit", *fit_args, f"--seed_everything={seed}"],
                    {"WANDB_RUN_GROUP": group, "WANDB_TAGS": f"ensemble,member,seed-{seed}", "WANDB_JOB_TYPE": "member"})
              for seed in seeds]
    print(f"ensemble {group}: {options.members} members (seeds {seeds[0]}..{seeds[-1]}), {options.workers} at a time; "
          f"logs in {folder / 'logs'}", flush=True)
    results = run_trials(trials, folder / "logs", options.workers, description="members")
    done = [(seed, r) for seed, r in zip(seeds, results) if r.ok and r.result.get("checkpoint")]
    failed = [r for r in results if not (r.ok and r.result.get("checkpoint"))]
    for r in failed:
        why = f"failed (exit {r.returncode})" if r.returncode else "finished without a best checkpoint (no monitor?)"
        print(f"warning: {r.trial.name} {why}; its log: {r.log}", file=sys.stderr, flush=True)
    if len(done) < 2:
        fail(f"only {len(done)} of {options.members} members finished with a checkpoint; see the logs in "
              f"{folder / 'logs'}.")
    members = [{"checkpoint": r.result["checkpoint"], "weight": 1.0, "seed": seed, "run": r.result.get("run_id"),
                "monitor": r.result.get("monitor"), "best_score": r.result.get("score"),
                "epochs": r.result.get("epochs")} for seed, r in done]
    manifest = write_manifest(folder / MANIFEST, "seed", members, group=group)
    print(f"manifest: {manifest}", flush=True)
    test = Trial("ensemble-test", ["test", *fit_args, "--ensemble", str(manifest)],
                 {"WANDB_RUN_GROUP": group, "WANDB_TAGS": "ensemble,summary", "WANDB_JOB_TYPE": "ensemble"})
    tested = run_trials([test], folder / "logs", 1, description="ensemble test")[0]
    if not tested.ok:
        fail(f"the ensemble's test failed (exit {tested.returncode}); its log: {tested.log}")
    rows = tested.result["members"] + [tested.result["ensemble"]]
    for row, (seed, _) in zip(rows, done):
        row["member"] = f"seed {seed}"
    write_atomically(folder / "ensemble_test.md", lambda partial: partial.write_text(markdown_table(rows), encoding="utf-8"))
    show(rows, folder)
    print(f"manifest:    {manifest}\nnext:\n  {{ cookiecutter.package_name }} predict --ensemble {manifest} "
          f"--config ... (the inputs as for predict --ckpt_path)", flush=True)
