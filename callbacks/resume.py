"""Runs that survive being stopped: the checkpoint a run resumes from, equal to never stopping.

Lightning's ``ModelCheckpoint`` takes one trigger (every N epochs *or* N steps) and its
``save_last`` follows the monitored saves, so after epochs without improvement ``last.ckpt`` is
stale. ``ResumableCheckpoint`` writes one file, ``last.ckpt``, at the end of every epoch, every
``every_n_train_steps`` training steps and when the run receives SIGTERM (preemption) or Ctrl+C.
It holds what the next step depends on: weights, optimizers, schedulers, every callback's state,
the loops' progress, the training loader's position (``ResumableLoader``) and the random
generators of torch, CUDA, numpy and Python, so a resumed run takes the same steps as one that
was never stopped. Each file is written to a temporary name and renamed, so a kill or a full disk
mid-write leaves the previous ``last.ckpt`` intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional
from weakref import proxy

import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from .notices import notice


def finished_marker(checkpoint: str | Path) -> Path:
    """The file saying that the fit which wrote ``checkpoint`` ended normally (``last.ckpt`` -> ``last.finished``):
    ``--ckpt_path last`` resumes only runs without it."""
    return Path(checkpoint).with_suffix(".finished")


def _not_at_a_step_boundary(trainer: Trainer) -> Optional[str]:
    """Why a checkpoint saved now would not resume exactly, or ``None`` when it would.

    Exact: in the training step's end hooks (the loader has served the batches the loops finished, plus
    the one whose hooks run) or between steps before the next batch is fetched, and not in the middle
    of a gradient accumulation or at an epoch's last batch (whose validation a resume would skip).
    """
    loop = trainer.fit_loop.epoch_loop
    progress = loop.batch_progress.current
    if trainer.validating or loop.val_loop.batch_progress.current.started > loop.val_loop.batch_progress.current.completed:
        return "during validation"
    in_end_hooks = progress.ready == progress.started == progress.processed == progress.completed + 1
    between_steps = progress.ready == progress.started == progress.processed == progress.completed
    if not (in_end_hooks or between_steps):
        return "in the middle of a training step"
    if progress.processed % trainer.accumulate_grad_batches:
        return "in the middle of a gradient accumulation"
    if in_end_hooks and loop.batch_progress.is_last_batch:
        return "at the epoch's last batch"
    return None


def rng_states() -> dict[str, Any]:
    """The global generators' states as plain values (lists of ints, no tensors or numpy arrays); CUDA: the
    current device's, the one this process draws from."""
    states = _collect_rng_states(include_cuda=False)
    states["torch"] = states["torch"].tolist()
    if "numpy" in states:
        kind, keys, position, has_gauss, gauss = states["numpy"]
        states["numpy"] = (kind, keys.tolist(), position, has_gauss, gauss)
    if torch.cuda.is_available():
        states["torch.cuda.current"] = torch.cuda.get_rng_state().tolist()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    states = dict(states)
    states["torch"] = torch.tensor(states["torch"], dtype=torch.uint8)
    if "numpy" in states:
        import numpy as np

        kind, keys, position, has_gauss, gauss = states["numpy"]
        states["numpy"] = (kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss)
    cuda = states.pop("torch.cuda.current", None)
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.tensor(cuda, dtype=torch.uint8))
    _set_rng_states(states)


class ResumableCheckpoint(ModelCheckpoint):
    """The checkpoint to resume from: every epoch, every N steps and on SIGTERM/Ctrl+C, written atomically.

    Resume with ``fit --config … --ckpt_path last`` (the newest unfinished run's) or ``--ckpt_path <file>``;
    the resumed run continues the same run folder and W&B run. SIGTERM (a scheduler's preemption)
    saves at the end of the current training step and ends the run with exit status 143; Ctrl+C saves
    too. A stop where a checkpoint would not resume exactly (inside a training step, during
    validation, mid gradient accumulation, at an epoch's last batch before its validation) keeps the
    previous checkpoint instead and says so. A fit that ends normally leaves ``last.finished`` next
    to the file, so ``--ckpt_path last`` does not resume it.

    Under DDP the checkpoint is written once, by rank zero; SIGTERM is saved when every rank has
    raised (Lightning broadcasts it at the next step), and every rank resumes with rank zero's
    generator states, so a DDP resume is not exact.

    Args:
        every_n_train_steps: also save every this many training steps (0: at epoch ends only). The
            save at the last step of an epoch is left to the end-of-epoch save, which follows the
            validation.
        filename: the file name without ``.ckpt``.
        dirpath: the folder; default ``<run folder>/checkpoints``.

    Raises:
        ValueError: ``every_n_train_steps`` below 0.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.ResumableCheckpoint
              init_args:
                every_n_train_steps: 100
    """

    def __init__(self, every_n_train_steps: int = 100, filename: str = "last", dirpath: Optional[str] = None) -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0 (0: epoch ends only), got {every_n_train_steps}.")
        super().__init__(dirpath=dirpath, filename=filename, save_top_k=1, enable_version_counter=False,
                         every_n_train_steps=every_n_train_steps or None, save_on_train_epoch_end=True)
        self._every_n_epochs = 1  # ModelCheckpoint accepts one trigger; this one saves on both
        self._interrupt_saved_at: Optional[int] = None

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(filename=self.filename)  # stable when every_n_train_steps changes

    @override
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.received_sigterm and trainer.world_size == 1:
            # Lightning raises SIGTERMException right after this step's hooks. Under DDP every rank raises
            # together at the start of the next step (Lightning broadcasts the signal), and on_exception saves
            # there, on every rank at once: saving here would run collectives on the ranks that saw it only
            self._save_interrupted(trainer, "SIGTERM")
            return
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # the epoch-end save, after validation, holds this step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero and self.best_model_path:  # not after SIGTERM, Ctrl+C or an error
            finished_marker(self.best_model_path).touch()

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and trainer.world_size > 1:
            self._save_interrupted(trainer, "SIGTERM")
        elif isinstance(exception, KeyboardInterrupt):
            self._save_interrupted(trainer, "Ctrl+C")

    def _save_interrupted(self, trainer: Trainer, why: str) -> None:
        if (trainer.state.fn != TrainerFn.FITTING or bool(trainer.fast_dev_run) or trainer.sanity_checking
                or trainer.global_step == 0 or self._interrupt_saved_at == trainer.global_step):
            return  # not training (test_after_fit), nothing trained yet, or this step is saved already
        unsafe = _not_at_a_step_boundary(trainer)
        if unsafe:
            notice(__name__, f"{why} {unsafe}: kept the checkpoint saved before it "
                             f"({self.best_model_path or 'none yet'}), which resumes exactly.")
            return
        self._interrupt_saved_at = trainer.global_step
        self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))
        notice(__name__, f"{why}: saved {self.best_model_path} at step {trainer.global_step}; resume with "
                         f"--ckpt_path last (or --ckpt_path {self.best_model_path}).")

    @override
    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        # ModelCheckpoint._save_checkpoint's steps, with the write going to a temporary name first
        path = Path(filepath)
        partial = path.with_name(f".{path.name}.partial")
        try:
            trainer.save_checkpoint(partial, self.save_weights_only)  # on every rank: a collective call
            if trainer.is_global_zero:
                partial.replace(path)
                finished_marker(path).unlink(missing_ok=True)  # a run that saves again is not finished
        except OSError as err:  # a full or read-only disk: the previous file stays whole, the message names it
            raise OSError(err.errno, err.strerror, str(path)) from err
        finally:
            if trainer.is_global_zero:  # rank zero alone touches the files: ranks may share the disk
                partial.unlink(missing_ok=True)
        trainer.strategy.barrier("ResumableCheckpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:  # after the rename: a logger that uploads checkpoints finds the new file
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "rng": rng_states()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if "rng" in state_dict:  # runs before the resumed run's first step, after its weights were built
            set_rng_states(state_dict["rng"])
