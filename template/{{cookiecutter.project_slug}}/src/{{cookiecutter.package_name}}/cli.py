"""Command line: ``{{ cookiecutter.package_name }} fit|validate|test|predict --config configs/default.yaml``.

One LightningCLI for every task: it links the data module's facts that the task names (``TASK.links``:
the number of classes, and e.g. the vocabulary size) to the model, rebuilds the data module from a
checkpoint's ``datamodule`` state for ``--ckpt_path``, writes the resolved ``config.yaml`` into the run
directory (next to ``checkpoints/``) and sends it to every logger, points every callback that watches a
validation metric at ``model.monitor`` with its direction (T57), tests the best checkpoint after ``fit``
(``test_after_fit``), puts the best epoch's metrics into the run summary, turns ``predict`` output into a
table, and exits
with status 1 when the overfit test (``configs/presets/overfit.yaml``, T51) fails. Every command,
``predict`` included, writes into its own run folder under ``runs/``. The screen shows the
project's own notices, one line each, and none of Lightning's tips.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import torch
import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback, _InstantiatorFn
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from lightning.pytorch.utilities.model_summary.model_summary import get_formatted_model_size, get_human_readable_count

from . import ensemble
from .callbacks.best_metrics import BestMetrics, monitored_checkpoint
from .callbacks.blend import BLEND_FILE, blend_for, blended_probabilities
from .callbacks.ensemble import Member, resolve_members
from .callbacks.nan_guard import NonFiniteError
from .callbacks.notices import notice
from .callbacks.overfit import OverfitCheck
from .callbacks.resume import ResumableCheckpoint, finished_marker
from .callbacks.wandb_io import run_directory, write_atomically
from .models.blocks import MONITORS
from .models.{{ cookiecutter.task }} import TASK
from .trials import TUNE_VARIABLE, write_result
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
        text = self.parser.dump(self.config, skip_none=False)
        path, resumed = self._run_dir / self.config_filename, 0
        while path.exists():  # a resumed run keeps the config it started with: config.resumed-1.yaml, ...
            resumed += 1
            path = self._run_dir / f"{Path(self.config_filename).stem}.resumed-{resumed}.yaml"
        write_atomically(path, lambda partial: partial.write_text(text, encoding="utf-8"))
        config = yaml.safe_load(text)
        for logger in trainer.loggers:
            logger.log_hyperparams(config)


class ProjectTrainer(Trainer):
    """Lightning's ``Trainer``, whose failed checkpoint writes name the checkpoint, not a temporary file.

    Lightning writes a checkpoint to a temporary file in the system's temporary folder and moves it
    into place, so on a full disk the error names ``/tmp/tmpXXXX``.
    """

    def save_checkpoint(self, filepath: Any, *args: Any, **kwargs: Any) -> None:
        try:
            super().save_checkpoint(filepath, *args, **kwargs)
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(filepath)) from err


class ModelSummary(RichModelSummary):
    """Lightning's rich model summary, without FLOPs when Lightning could not count them.

    A model of variable-length inputs has no example input of fixed shape, so Lightning's summary shows a column of
    zeros and "Total FLOPs: 0", a number that only misleads.
    """

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int, **kwargs: Any) -> None:
        if total_flops:
            return RichModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size,
                                              total_training_modes, total_flops, **kwargs)
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style="bold magenta")
        for name, _ in columns:
            table.add_column(name, justify="right" if name == "Params" else "left", style="dim" if name == " " else None)
        for row in zip(*(values for _, values in columns)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        console.print(f"Params: {get_human_readable_count(trainable_parameters)} trainable, "
                      f"{get_human_readable_count(total_parameters - trainable_parameters)} non-trainable, "
                      f"{get_formatted_model_size(model_size)} MB")
        return None


class ProjectCLI(LightningCLI):
    """LightningCLI for this project's model and data module."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", SaveRunConfig)
        kwargs.setdefault("trainer_class", ProjectTrainer)
        kwargs.setdefault("auto_configure_optimizers", False)  # the model owns its optimizer and `lr`
        kwargs.setdefault("seed_everything_default", 42)  # no "No seed found" when a config sets none
        # every command logs into a run folder under runs/, even without --config (predict)
        kwargs.setdefault("trainer_defaults", {"logger": DEFAULT_LOGGER, "callbacks": [BestMetrics(), ModelSummary()]})
        self._restore_from: Optional[str] = None  # --ckpt_path: the checkpoint that rebuilds the data module
        self._members: list[Member] = []  # --ensemble: the members, in order (test and predict)
        self._trial_report: Any = None  # fit started by `tune`: reports to its study (tune/trial_report.py)
        super().__init__(TASK.model, TASK.datamodule, *args, **kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        for name in TASK.links:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
        parser.add_argument(
            "--test_after_fit", type=bool, default=False,
            help="fit: evaluate the best checkpoint on the test split when training ends (default.yaml: true)",
        )
        parser.add_argument(
            "--ensemble", type=Optional[Union[str, list[str]]], default=None,
            help="test/predict: average the predicted probabilities of an ensemble: its manifest (ensemble.yaml, "
                 "written by the `ensemble` command or SnapshotEnsemble) or two or more checkpoints",
        )

    def _parse_ckpt_path(self) -> None:
        # before LightningCLI reads the checkpoint's hyperparameters, with torch's advice for unreadable files
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        if config is not None:
            check_presets(config.get("config") or [])
        ckpt_path = config.get("ckpt_path") if config is not None else None
        if config is not None and config.get("ensemble"):
            if subcommand not in ("test", "predict"):
                raise ValueError(f"--ensemble is for test and predict, not {subcommand}; `{{ cookiecutter.package_name }} "
                                 "ensemble --config ... --members N` trains a seed ensemble.")
            if ckpt_path:
                raise ValueError("give --ensemble or --ckpt_path, not both: the ensemble's members are its checkpoints.")
            self._members = resolve_members(config.ensemble)
            for member in self._members:
                check_checkpoint(str(member.checkpoint), resumable=False)
            # the data module and the model are built as the first member's; each member then brings its own state
            self._restore_from = str(self._members[0].checkpoint)
        if ckpt_path == "last" and subcommand == "fit":
            found = latest_resumable(*_run_root(config))
            if found is None:
                notice(__name__, f"--ckpt_path last: no resumable checkpoint in {_run_root(config)[0]}/; starting a new run.")
            else:
                notice(__name__, f"--ckpt_path last: resuming run {found.parent.parent.name}, the newest unfinished "
                                 f"run in {found.parents[2]}/, from {found}.")
            config.ckpt_path = ckpt_path = str(found) if found else None
        if ckpt_path:
            check_checkpoint(ckpt_path, resumable=subcommand == "fit")
            self._restore_from = str(ckpt_path)  # resume or predict with the checkpoint's data state (labels, ...)
        super()._parse_ckpt_path()

    def _add_instantiators(self) -> None:
        super()._add_instantiators()
        # Lightning's own (private) instantiator records the data module's hyperparameters; wrapped, not replaced
        lightning_instantiator = _InstantiatorFn(cli=self, key="data")

        def data_from_checkpoint(class_type: type, *args: Any, applied_instantiation_links: dict, **kwargs: Any) -> Any:
            # before the links read it: the model is built for the checkpoint's classes (and vocabulary)
            datamodule = lightning_instantiator(
                class_type, *args, applied_instantiation_links=applied_instantiation_links, **kwargs)
            if self._restore_from is not None:
                datamodule.load_state_dict(datamodule_state(self._restore_from, datamodule))
            return datamodule

        self.parser.add_instantiator(data_from_checkpoint, TASK.datamodule, subclasses=True, prepend=True)

    def before_instantiate_classes(self) -> None:
        if self.subcommand is not None:
            config = self.config[self.subcommand]
            follow_monitor(config.model.monitor, config.trainer.get("callbacks") or [])

    def _without_training_callbacks(self) -> None:
        # validate/test/predict load only the weights and the data module's state from --ckpt_path; Lightning
        # still asks for the training callbacks whose state the checkpoint holds, which these commands never need
        warnings.filterwarnings("ignore", message=r"Be aware that when using `ckpt_path`")

    before_validate = before_test = before_predict = _without_training_callbacks

    def before_fit(self) -> None:
        run_id = resumed_run_id(self.config.fit.get("ckpt_path"))
        if run_id is not None:  # the same run folder and W&B run as the interrupted run
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            for logger in self.trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.resume(run_id)
        if os.environ.get(TUNE_VARIABLE):
            from .tune.trial_report import TrialReport

            self._trial_report = TrialReport.from_environment()
        if self._trial_report is not None:  # a trial of `tune`: the monitor goes to the study each epoch
            self.trainer.callbacks.append(self._trial_report)
        if self.trainer.fast_dev_run:  # Lightning still writes last.ckpt on train end under fast_dev_run
            for callback in self.trainer.checkpoint_callbacks:
                callback.save_last = False

    def _run_subcommand(self, subcommand: str) -> None:
        previous = signal.signal(signal.SIGTERM, _sigterm_outside_the_loops)
        try:
            # bad data stops the run here, before a run folder, a W&B run or a cache exists
            self.datamodule.setup(subcommand)  # the stages are named as the subcommands
            _PHASE["running"] = True
            super()._run_subcommand(subcommand)
        except SIGTERMException:
            self._preempted()
            raise SystemExit(PREEMPTED) from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _preempted(self) -> None:
        """SIGTERM (a scheduler preempting the job): tell W&B, say how to resume, exit with 143."""
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger) and logger._experiment is not None:
                logger._experiment.mark_preempting()
                logger.finish(quiet=True, exit_code=PREEMPTED)
        if self.trainer.is_global_zero:
            resumable = [cb for cb in self.trainer.checkpoint_callbacks if isinstance(cb, ResumableCheckpoint)]
            saved = resumable[0].best_model_path if resumable else ""
            if not resumable:
                where = "this config has no ResumableCheckpoint, so nothing to resume from"
            elif saved and finished_marker(saved).exists():
                where = f"the fit had finished ({_shown(Path(saved))}); the test after it did not"
            elif saved:
                where = f"checkpoint: {_shown(Path(saved))}; resume with the same command plus --ckpt_path last"
            else:
                where = "no checkpoint yet (nothing trained): run the same command again"
            print(f"preempted (SIGTERM): {where}", file=sys.stderr, flush=True)

    def _finish_loggers(self, quiet: bool = False) -> None:
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.finish(quiet=quiet)

    def after_fit(self) -> None:
        overfit = [cb for cb in self.trainer.callbacks if isinstance(cb, OverfitCheck)]
        best = monitored_checkpoint(self.trainer)
        best_path = getattr(best, "best_model_path", "") if best is not None else ""
        tested: dict[str, float] = {}
        pruned = self._trial_report is not None and self._trial_report.pruned is not None
        if self.config.fit.get("test_after_fit") and best_path and not overfit and not self.trainer.interrupted \
                and not pruned:
            # rank zero reads the best weights and sends them: other nodes need not see its disk
            best_weights = torch.load(best_path, map_location="cpu", weights_only=True)["state_dict"] \
                if self.trainer.is_global_zero else None
            self.model.load_state_dict(self.trainer.strategy.broadcast(best_weights, src=0))
            results = self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
            tested = {key: float(value) for key, value in (results[0] if results else {}).items()}
        run_dir = run_directory(self.trainer)  # on every rank: it may broadcast
        if self.trainer.is_global_zero:  # for the trial runner (the `ensemble` command), when it started this run
            score = getattr(best, "best_model_score", None) if best is not None else None
            write_result({"run_dir": str(run_dir.resolve()), "run_id": run_dir.name,
                          "checkpoint": str(Path(best_path).resolve()) if best_path else "",
                          "monitor": getattr(best, "monitor", None), "score": float(score) if score is not None else None,
                          "test": tested, "epochs": self.trainer.current_epoch, "steps": self.trainer.global_step,
                          "interrupted": self.trainer.interrupted})
        if best_path:  # the W&B lines go into the closing summary
            finish = [logger.finish_lines() for logger in self.trainer.loggers if isinstance(logger, WandbLogger)]
            self._finish_loggers(quiet=True)
            if self.trainer.is_global_zero:
                print(end_of_fit(best, best_path, tested, run_dir, finish[0] if finish else []), flush=True)
        else:
            self._finish_loggers()
        if any(cb.passed is False for cb in overfit):
            raise SystemExit(1)  # T51: the overfit preset failed (the reason is printed above)

    def after_validate(self) -> None:
        self._finish_loggers()

    def after_test(self) -> None:
        self._finish_loggers()

    def _start_run(self, model: LightningModule, stage: str) -> None:
        """What ``Trainer.test``/``predict`` do before their loop, for a command that runs none (an ensemble's):
        start each logger's run, so the run folder exists, and save the config there."""
        for logger in self.trainer.loggers:
            _ = logger.experiment
        for callback in self.trainer.callbacks:
            if isinstance(callback, SaveConfigCallback):
                callback.setup(self.trainer, model, stage)

    def test(self, model: LightningModule, datamodule: Any, **kwargs: Any) -> None:
        """Test one checkpoint (Lightning's ``Trainer.test``), or with ``--ensemble`` every member and the ensemble."""
        if self._members:
            self._start_run(model, "test")
            ensemble.evaluate(self.trainer, self._members, datamodule, TASK.model, datamodule_state)
        else:
            self.trainer.test(model, datamodule=datamodule, **kwargs)

    def predict(self, model: LightningModule, datamodule: Any, **kwargs: Any) -> None:
        """Classify the inputs and show them with their labels; also saved as ``predictions.jsonl``.

        With ``--ensemble`` the members' probabilities are averaged; a ``--ckpt_path`` beside a ``blend.pkl``
        (``ClassicalBlend``, T63) is blended with its classical model."""
        if self._members:
            self._start_run(model, "predict")
            probabilities = torch.from_numpy(
                ensemble.predict(self.trainer, self._members, datamodule, TASK.model, datamodule_state)).float()
        else:
            kwargs["return_predictions"] = True
            probabilities = torch.cat(self.trainer.predict(model, datamodule=datamodule, **kwargs))
            stored = blend_for(kwargs["ckpt_path"]) if kwargs.get("ckpt_path") else None
            if stored is not None:
                notice(__name__, f"predict: blended with the classical model in {Path(kwargs['ckpt_path']).parent / BLEND_FILE} "
                                 f"(weight {stored['weight']:.2f}, chosen on validation; T63).")
                probabilities = torch.from_numpy(blended_probabilities(
                    stored, probabilities.double().numpy(), datamodule.split_inputs("predict"))).float()
        name = datamodule.input_name
        rows = prediction_rows(name, datamodule.predict_inputs(), probabilities, datamodule.labels)
        path = run_directory(self.trainer) / "predictions.jsonl"  # on every rank: it may broadcast
        if self.trainer.is_global_zero:
            text = "".join(json.dumps(row) + "\n" for row in rows)
            write_atomically(path, lambda partial: partial.write_text(text, encoding="utf-8"))
            show_predictions(name, rows, path)
            for logger in self.trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.log_table(
                        "predictions",
                        columns=[name, "label", "probability"],
                        data=[[r[name], r["label"], r["probability"]] for r in rows],
                    )
        self._finish_loggers()


DEFAULT_LOGGER = {
    "class_path": "{{ cookiecutter.package_name }}.wandb_logger.WandbLogger",
    "init_args": {"project": {{ cookiecutter.wandb_project | tojson }}, "save_dir": "runs"},
}


PREEMPTED = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM
_PHASE = {"running": False}  # main(): errors before the run are bad input (status 2), after it run-time (1)
TRACEBACK_VARIABLE = "{{ cookiecutter.package_name | upper }}_TRACEBACK"


def _sigterm_outside_the_loops(signum: int, frame: Any) -> None:
    """SIGTERM before Lightning's loops handle it (reading data, word vectors, the LR sweep at fit start):
    end the run at once. Lightning installs its own handler for its loops, which saves at the end of the
    step, and calls this one after it: this one then does nothing."""
    if signal.getsignal(signal.SIGTERM) is _sigterm_outside_the_loops:
        raise SIGTERMException(PREEMPTED)


def _run_root(config: Any) -> tuple[Path, str]:
    """Where the logger puts run folders: ``<save_dir>/<project>`` (W&B) from the config."""
    logger = config.trainer.get("logger")
    if isinstance(logger, list):
        logger = logger[0] if logger else None
    init_args = (logger.get("init_args") if hasattr(logger, "get") else None) or {}
    save_dir = init_args.get("save_dir") or DEFAULT_LOGGER["init_args"]["save_dir"]
    project = init_args.get("project") or DEFAULT_LOGGER["init_args"]["project"]
    return Path(save_dir), str(project)


def latest_resumable(save_dir: Path, project: str) -> Optional[Path]:
    """The newest ``last.ckpt`` of the project's unfinished runs (``<save_dir>/<project>/<run id>/checkpoints/``):
    a run stopped by SIGTERM, Ctrl+C, kill -9 or an error, not one that ended normally."""
    found = [path for path in (save_dir / project).glob("*/checkpoints/last.ckpt")
             if path.is_file() and not finished_marker(path).exists()]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def resumed_run_id(ckpt_path: Optional[str]) -> Optional[str]:
    """The run id of a checkpoint inside a run folder (``<project>/<run id>/checkpoints/x.ckpt``)."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path).resolve()
    return path.parent.parent.name if path.parent.name == "checkpoints" else None


def check_checkpoint(path: str, resumable: bool) -> None:
    """Refuse a missing, unreadable or (for ``fit``) weights-only checkpoint, with what to pass instead."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--ckpt_path {path}: no such file. A run's checkpoints are in "
                                "runs/<project>/<run id>/checkpoints/; `--ckpt_path last` resumes the newest run.")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise ValueError(f"{path} is not a readable checkpoint (corrupt or truncated).") from None
        raise ValueError(f"{path} holds Python objects besides tensors and plain values; this project loads "
                         "only checkpoints that a safe load (torch.load weights_only=True) accepts.") from None
    except Exception:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ... for a damaged file
        raise ValueError(f"{path} is not a readable checkpoint (corrupt or truncated).") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning checkpoint (no state_dict).")
    if resumable and "optimizer_states" not in checkpoint:
        raise ValueError(f"{path} holds weights only (a best-epoch checkpoint, for test and predict): fit resumes "
                         "from checkpoints/last.ckpt; pass that file, or --ckpt_path last for the newest run.")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies inside it, else absolute."""
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def end_of_fit(best: Any, best_path: str, tested: dict[str, float], run_dir: Path, wandb_lines: list[str]) -> str:
    """What a finished ``fit`` prints: the result, where everything is, and the next three commands."""
    score = best.best_model_score
    result = f"best {best.monitor}: {float(score):.4f}" if score is not None else f"best {best.monitor}: n/a"
    if tested:
        result += "   " + "   ".join(f"{key}: {value:.4f}" for key, value in sorted(tested.items()) if key.endswith(("acc", "f1")))
        result += "   (best checkpoint on the test split)"
    ckpt = _shown(Path(best_path))
    lines = ["", result, f"run folder:  {_shown(run_dir)}  (config.yaml, checkpoints/, lr_finder.png, reports)",
             f"checkpoint:  {ckpt}", *wandb_lines, "next:"]
    if sys.prefix != sys.base_prefix:  # running in a virtual environment: say how to enter it
        lines.append(f"  source {_shown(Path(sys.prefix) / 'bin' / 'activate')}")
    lines += [
        f"  {{ cookiecutter.package_name }} predict --ckpt_path '{ckpt}' {TASK.predict_example}",
        f"  {{ cookiecutter.package_name }} fit --config configs/default.yaml {TASK.own_data_example}",
    ]
    return "\n".join(lines)


def check_presets(configs: list[Any]) -> None:
    """Refuse a preset (``configs/presets/*.yaml``) given first: presets change the default config, never replace it.

    Alone, ``presets/vanilla.yaml`` would train at the class defaults (lr 0.001, 1,000 epochs, no
    logger, a random seed) instead of the project's, silently.

    Raises:
        ValueError: the first ``--config`` is a preset, naming the command that stacks it.
    """
    if configs and Path(str(configs[0])).parent.name == "presets":
        first = str(configs[0])
        raise ValueError(f"{first} is a preset: it changes configs/default.yaml and does not stand alone. Stack it "
                         f"after the default: --config configs/default.yaml --config {first}")


def follow_monitor(monitor: str, callbacks: list[Any]) -> None:
    """Point every callback config that watches a validation metric (one of ``MONITORS``) at ``monitor``,
    with its ``mode``: one edit of ``model.monitor`` moves checkpointing, early stopping and schedules (T57)."""
    for callback in callbacks:
        init_args = callback.get("init_args") if hasattr(callback, "get") else None
        if init_args is None or init_args.get("monitor") not in MONITORS:
            continue
        init_args.monitor = monitor
        if "mode" in init_args:
            init_args.mode = MONITORS[monitor]


def datamodule_state(path: str, datamodule: Any) -> dict[str, Any]:
    """The data module's state that Lightning saved in the checkpoint at ``path`` (``LightningDataModule.state_dict``)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    key = type(datamodule).__qualname__
    if key not in checkpoint:
        raise ValueError(f"{path} holds no {key} state (a checkpoint of another task or project?): predict and "
                         "resume rebuild the data module from it.")
    return checkpoint[key]


def prediction_rows(name: str, inputs: list[str], probabilities: torch.Tensor,
                    labels: list[str]) -> list[dict[str, Any]]:
    """One dict per input: the input under ``name``, the most likely label, its probability and all probabilities."""
    rows = []
    for shown, probs in zip(inputs, probabilities.tolist()):
        best = max(range(len(probs)), key=probs.__getitem__)
        rows.append(
            {
                name: shown,
                "label": labels[best],
                "probability": round(probs[best], 4),
                "probabilities": {label: round(p, 4) for label, p in zip(labels, probs)},
            }
        )
    return rows


def show_predictions(name: str, rows: list[dict[str, Any]], path: Path, limit: int = 20) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(name, "label", "probability", title=f"predictions (all {len(rows)} in {path})")
    for row in rows[:limit]:
        text = row[name] if len(row[name]) <= 80 else row[name][:77] + "..."
        table.add_row(text, row["label"], f"{row['probability']:.3f}")
    Console().print(table)


class _Stderr(logging.StreamHandler):
    """A handler writing to the ``sys.stderr`` of the moment: notebooks and test runners replace it."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ sets it; the property decides
        pass


class _Notice(logging.Formatter):
    """The project's notices, one line each: ``warning: `` before warnings, nothing before the rest."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return f"{record.levelname.lower()}: {message}" if record.levelno >= logging.WARNING else message


_SILENCED = (
    "💡 Tip",  # Lightning's adverts for its cloud products
    "Trainer already configured with model summary callbacks",  # about this CLI's own ModelSummary
)


def _no_tips(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_SILENCED)


def quiet_screen() -> None:
    """Print this package's notices through ``logging`` and silence Lightning's tips and W&B's banner."""
    os.environ.setdefault("WANDB_SILENT", "true")
    package = logging.getLogger(__package__)
    if not package.handlers:
        handler = _Stderr()
        handler.setFormatter(_Notice())
        package.addHandler(handler)
        package.setLevel(logging.INFO)
        package.propagate = False
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _no_tips not in logger.filters:
            logger.addFilter(_no_tips)
    # a deprecation inside Lightning 2.6.6 itself, printed on every run; nothing a user can act on
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # a small data set (a 200-row CSV: 2 batches an epoch) has fewer batches than log_every_n_steps; its
    # epoch-level metrics are logged all the same, so Lightning's advice is noise on every such run
    warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller than the logging interval")


def error_message(error: BaseException) -> Optional[str]:
    """The one line printed for an error the user can fix, or ``None`` for a bug (shown with its traceback)."""
    if isinstance(error, OSError) and error.filename and not isinstance(error, FileNotFoundError):
        if error.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG):  # a full or read-only disk
            return f"cannot write {error.filename}: {error.strerror or error}"
        return f"{error.filename}: {error.strerror or error}"  # permissions, a folder where a file should be, ...
    if isinstance(error, (ValueError, FileNotFoundError, NonFiniteError, MisconfigurationException, ModuleNotFoundError)):
        return str(error)
    return None


def main(args: Any = None) -> None:
    """Entry point of ``python -m {{ cookiecutter.package_name }}`` and the console script.

    An error the user can act on (bad input, a full disk, a diverged run) prints as one line, with
    exit status 2 before the run starts and 1 once it runs; ``{{ cookiecutter.package_name | upper }}_TRACEBACK=1``
    shows the traceback as well. SIGTERM ends a run with status 143 after saving a checkpoint.
    """
    quiet_screen()
    description = {{ cookiecutter.description | tojson }} + ". Subcommands: fit, validate, test, predict, ensemble, tune."
    _PHASE["running"] = False
    argv = list(sys.argv[1:] if args is None else args)
    try:
        if argv[:1] == ["tune"]:  # the tuning autopilot and Optuna searches (tune/)
            from .tune import main as tune

            tune(argv[1:], DEFAULT_LOGGER["init_args"]["save_dir"], DEFAULT_LOGGER["init_args"]["project"], check_presets)
            return
        if argv[:1] == ["ensemble"]:  # T61: runs `fit` once per seed, then `test --ensemble` (ensemble.py)
            ensemble.main(argv[1:], DEFAULT_LOGGER["init_args"]["save_dir"], DEFAULT_LOGGER["init_args"]["project"],
                          check_presets)
            return
        ProjectCLI(args=args, parser_kwargs={"prog": "{{ cookiecutter.package_name }}", "description": description})
    except KeyboardInterrupt:  # Ctrl+C before or after training (during it, Lightning stops with status 1)
        print("interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except Exception as error:  # noqa: BLE001 - sorted into the user's errors and bugs below
        message = error_message(error)
        if message is None or os.environ.get(TRACEBACK_VARIABLE):
            raise
        running = _PHASE["running"]
        hint = f" (the traceback: {TRACEBACK_VARIABLE}=1)" if running else ""  # a run-time error may be a bug
        print(f"error: {message}{hint}", file=sys.stderr, flush=True)
        raise SystemExit(1 if running else 2) from None
