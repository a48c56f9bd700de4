"""Command line: ``{{ cookiecutter.package_name }} fit|validate|test|predict --config configs/default.yaml``.

A LightningCLI that links the data module's facts (vocabulary size, number of classes,
padding index) to the model, writes the resolved ``config.yaml`` into the run directory
(next to ``checkpoints/``) and sends it to W&B, checks that every callback follows the
one monitor metric (T57), turns ``predict`` output into a table, and exits with status 1
when the overfit test (``configs/presets/overfit.yaml``, T51) fails.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from .callbacks.overfit import OverfitCheck
from .callbacks.wandb_io import run_directory
from .datamodules import TextClassificationDataModule as DataModule
from .models.text_classification import MONITORS
from .models.text_classification import TextClassifier as Model
from .wandb_logger import WandbLogger


class SaveRunConfig(SaveConfigCallback):
    """Save the resolved config per run, never into a folder shared by all runs.

    LightningCLI's default writes ``config.yaml`` into ``trainer.log_dir``, which for W&B is
    the ``save_dir`` shared by every run, so the second run aborts ("expected config.yaml to
    NOT exist"). This writes it into the run directory instead and sends the full config,
    not only the model's hyperparameters, to every logger.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["save_to_log_dir"] = False
        super().__init__(*args, **kwargs)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._run_dir = run_directory(trainer)  # on every rank: it may broadcast; save_config runs on rank zero
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        run_dir = self._run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        text = self.parser.dump(self.config, skip_none=False)
        (run_dir / self.config_filename).write_text(text, encoding="utf-8")
        config = yaml.safe_load(text)
        for logger in trainer.loggers:
            logger.log_hyperparams(config)


class ProjectCLI(LightningCLI):
    """LightningCLI for this project's model and data module."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", SaveRunConfig)
        kwargs.setdefault("auto_configure_optimizers", False)  # the model owns its optimizer and `lr`
        super().__init__(Model, DataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        for name in ("vocab_size", "num_classes", "pad_index"):
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        ckpt_path = config.get("ckpt_path")
        if ckpt_path and Path(ckpt_path).is_file() and not config.data.vocab_from:
            # resume or predict with the checkpoint's vocabulary and labels, not rebuilt ones
            config.data.vocab_from = str(ckpt_path)

    def after_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        check_monitors(self.model.monitor, self.trainer.callbacks)

    def before_fit(self) -> None:
        if self.trainer.fast_dev_run:  # Lightning still writes last.ckpt on train end under fast_dev_run
            for callback in self.trainer.checkpoint_callbacks:
                callback.save_last = False

    def _finish_loggers(self) -> None:
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.finish()

    def after_fit(self) -> None:
        best = self.trainer.checkpoint_callback
        if best is not None and getattr(best, "best_model_path", ""):
            score = best.best_model_score
            shown = f"{float(score):.4f}" if score is not None else "n/a"
            print(f"best {best.monitor}: {shown}  checkpoint: {Path(best.best_model_path).resolve()}", flush=True)
        self._finish_loggers()
        if any(isinstance(cb, OverfitCheck) and cb.passed is False for cb in self.trainer.callbacks):
            raise SystemExit(1)  # T51: the overfit preset failed (the reason is printed above)

    def after_validate(self) -> None:
        self._finish_loggers()

    def after_test(self) -> None:
        self._finish_loggers()

    def predict(self, model: LightningModule, datamodule: DataModule, **kwargs: Any) -> None:
        """Classify texts and show them with their labels; also saved as ``predictions.jsonl``."""
        kwargs["return_predictions"] = True
        batches = self.trainer.predict(model, datamodule=datamodule, **kwargs)
        rows = prediction_rows(datamodule.texts["predict"], torch.cat(batches), datamodule.labels)
        path = run_directory(self.trainer) / "predictions.jsonl"  # on every rank: it may broadcast
        if self.trainer.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
            show_predictions(rows, path)
            for logger in self.trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.log_table(
                        "predictions",
                        columns=["text", "label", "probability"],
                        data=[[r["text"], r["label"], r["probability"]] for r in rows],
                    )
        self._finish_loggers()


def check_monitors(monitor: str, callbacks: list[Any]) -> None:
    """Fail when a callback watches another metric, or the wrong direction, than ``model.monitor`` (T57)."""
    for callback in callbacks:
        watched: Optional[str] = getattr(callback, "monitor", None)
        if watched is None:
            continue
        name = type(callback).__name__
        if watched != monitor:
            raise ValueError(
                f"{name} monitors {watched!r} but model.monitor is {monitor!r}. Early stopping, checkpointing "
                "and the LR schedule must follow one metric: set the same name in both places "
                f"(choices: {', '.join(MONITORS)})."
            )
        mode = getattr(callback, "mode", MONITORS[monitor])
        if mode != MONITORS[monitor]:
            raise ValueError(f"{name} uses mode={mode!r} for {monitor!r}; it must be {MONITORS[monitor]!r}.")


def prediction_rows(texts: list[str], probabilities: torch.Tensor, labels: list[str]) -> list[dict[str, Any]]:
    """One dict per text: the text, the most likely label, its probability and all probabilities."""
    rows = []
    for text, probs in zip(texts, probabilities.tolist()):
        best = max(range(len(probs)), key=probs.__getitem__)
        rows.append(
            {
                "text": text,
                "label": labels[best],
                "probability": round(probs[best], 4),
                "probabilities": {label: round(p, 4) for label, p in zip(labels, probs)},
            }
        )
    return rows


def show_predictions(rows: list[dict[str, Any]], path: Path, limit: int = 20) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("text", "label", "probability", title=f"predictions (all {len(rows)} in {path})")
    for row in rows[:limit]:
        text = row["text"] if len(row["text"]) <= 80 else row["text"][:77] + "..."
        table.add_row(text, row["label"], f"{row['probability']:.3f}")
    Console().print(table)


def main(args: Any = None) -> None:
    """Entry point of ``python -m {{ cookiecutter.package_name }}`` and the console script."""
    os.environ.setdefault("WANDB_SILENT", "true")
    # a deprecation inside Lightning 2.6.6 itself, printed on every run; nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    description = {{ cookiecutter.description | tojson }} + ". Subcommands: fit, validate, test, predict."
    ProjectCLI(args=args, parser_kwargs={"prog": "{{ cookiecutter.package_name }}", "description": description})
