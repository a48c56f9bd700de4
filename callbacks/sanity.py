"""Pre-flight checks at the start of training (T50, T52, T53).

Cheap checks that catch the bugs which otherwise cost a day of tuning: far more parameters than
training examples (T50); batches that are empty, non-finite, all zeros, repeated, single-class or
mostly padding (T52); a first loss far from ln C, the loss of a model that has learned nothing
yet (T53). The findings are printed as one table and written to the W&B summary.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from .contract import classification_data, label_names, num_classes, token_data
from .fit_start import FitStartStep
from .notices import notice
from .reporting import report_summary
from .wandb_io import run_directory, write_report

LABEL_KEYS = ("labels", "label", "targets", "target", "y")
#: layers whose weights every example shares across positions (tokens, pixels): counted apart by the ``params`` check.
#: ResNet-18 has ~220 parameters per CIFAR-10 image, nearly all in convolutions, and does not overfit for it
SHARED_LAYERS = (torch.nn.Embedding, torch.nn.EmbeddingBag, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


@dataclass
class Finding:
    """One check's outcome: ``status`` is ``ok``, ``warn`` or ``fail``; ``detail`` says what to do."""

    check: str
    trick: str
    status: str
    value: Any
    detail: str


def split_batch(batch: Any) -> tuple[list[tuple[str, torch.Tensor]], Optional[torch.Tensor]]:
    """The input tensors (with names) and the label tensor of a batch.

    A dict's labels are under ``labels``, ``label``, ``targets``, ``target`` or ``y``; a tuple's or
    list's are its last element when that is a 1-D integer tensor; a bare tensor has no labels.
    """
    if isinstance(batch, Mapping):
        labels = next((batch[k] for k in LABEL_KEYS if isinstance(batch.get(k), torch.Tensor)), None)
        inputs = [(str(k), v) for k, v in batch.items() if isinstance(v, torch.Tensor) and v is not labels]
        return inputs, labels
    if isinstance(batch, (tuple, list)):
        tensors = [(f"[{i}]", v) for i, v in enumerate(batch) if isinstance(v, torch.Tensor)]
        if len(tensors) > 1 and tensors[-1][1].dim() == 1 and not tensors[-1][1].is_floating_point():
            return tensors[:-1], tensors[-1][1]
        return tensors, None
    if isinstance(batch, torch.Tensor):
        return [("batch", batch)], None
    return [], None


def _same(a: Any, b: Any) -> bool:
    (inputs_a, labels_a), (inputs_b, labels_b) = split_batch(a), split_batch(b)
    pairs = list(zip(inputs_a, inputs_b))
    if not pairs or len(inputs_a) != len(inputs_b):
        return False
    if any(x.shape != y.shape or not torch.equal(x, y) for (_, x), (_, y) in pairs):
        return False
    if labels_a is None or labels_b is None:
        return True
    return labels_a.shape == labels_b.shape and torch.equal(labels_a, labels_b)


def label_mix(seen: Mapping[int, int], expected: list[int], names: Optional[list[str]] = None,
              z_limit: float = 3.0, share_limit: float = 0.05) -> Finding:
    """The ``label_mix`` finding: do the inspected batches' class shares match the training split's?

    ``seen`` counts class indices in the inspected batches, ``expected`` the training split's
    examples per class. A class is off when its share differs by more than ``z_limit`` binomial
    standard errors *and* ``share_limit`` (a random batch order is off by 3 standard errors for a given class
    once in ~370 checks; the share limit keeps many batches from flagging a trivial shift).

    Example:
        >>> label_mix({0: 186, 1: 6}, [870, 130], ["ham", "spam"]).status
        'warn'
    """
    total, reference = sum(seen.values()), sum(expected)
    if not total or not reference:
        return Finding("label_mix", "T52", "ok", None, "no labels to compare")
    off = []
    for index, count in enumerate(expected):
        p = count / reference
        observed = seen.get(index, 0) / total
        error = math.sqrt(p * (1 - p) / total) if 0 < p < 1 else 0.0
        if abs(observed - p) > share_limit and abs(observed - p) > z_limit * error:
            name = names[index] if names and index < len(names) else str(index)
            off.append(f"{name} {observed:.0%} vs {p:.0%}")
    if off:
        return Finding("label_mix", "T52", "warn", off,
                       f"batches' class mix departs from the training split's ({', '.join(off)} of {total} examples): "
                       "length bucketing without data.stratified_batches, or a loader that reads by class? Batches "
                       "that keep the mix give steadier steps and a readable LR sweep")
    return Finding("label_mix", "T52", "ok", None, "class mix as in the training split")


def pad_index(trainer: Trainer, pl_module: LightningModule) -> Optional[int]:
    """The padding token of a data module of tokens (or the model's ``hparams.pad_index``), else ``None``."""
    data = token_data(trainer)
    if data is not None:
        return int(data.pad_index)
    value = pl_module.hparams.get("pad_index") if isinstance(pl_module.hparams, dict) else None
    return None if value is None else int(value)


def padding_share(batches: list[Any], pad: Optional[int]) -> Optional[float]:
    """The share of padded time steps in ``batches``: past each example's ``lengths`` when the batches carry
    them (any task), else the ``pad`` tokens of 2-D integer inputs; ``None`` when neither applies."""
    steps = padded = 0
    for batch in batches:
        inputs, _ = split_batch(batch)
        lengths = batch.get("lengths") if isinstance(batch, Mapping) else None
        sequences = [t for name, t in inputs if name != "lengths" and t.dim() >= 2]
        if isinstance(lengths, torch.Tensor) and sequences:
            width = sequences[0].shape[1]
            steps += lengths.numel() * width
            padded += int((width - lengths.clamp(max=width)).sum())
        elif pad is not None:
            tokens = [t for t in sequences if t.dim() == 2 and not t.is_floating_point()]
            steps += sum(t.numel() for t in tokens)
            padded += sum(int((t == pad).sum()) for t in tokens)
    return padded / steps if steps else None


def _expected_loss(trainer: Trainer, pl_module: LightningModule) -> Optional[float]:
    """ln C for C classes, C read from the model's hyperparameters or the data module (duck-typed)."""
    classes = num_classes(trainer, pl_module)
    return math.log(classes) if classes and classes > 1 else None


def _loss_of(outputs: Any) -> Optional[torch.Tensor]:
    if isinstance(outputs, Mapping):
        outputs = outputs.get("loss")
    return outputs if isinstance(outputs, torch.Tensor) else None


class SanityChecks(FitStartStep):
    r"""Check the model size, the first batches and the first loss; say what is wrong (T50, T52, T53).

    Runs once per fit; not on resume, nor under ``fast_dev_run``. At fit start (after weight init, word2vec init and the LR
    finder: ``fit_start_order`` 40) it counts the trainable parameters; then it inspects the first
    ``num_batches`` training batches exactly as the model receives them, and the loss of the first
    training step, which is computed with the weights training starts from. Findings:

    ====================  =====  ==================================================================
    ``params``            T50    trainable parameters per training example, embedding tables
                                 and convolutions counted apart (an example updates only its own
                                 words' rows; a filter is trained at every image position);
                                 warns above ``max_params_per_example``
    ``shapes``            T52    shape and dtype of every input and of the labels; fails on empty
    ``nonfinite_inputs``  T52    NaN/Inf values in floating-point inputs (fails)
    ``zero_inputs``       T52    share of examples with an all-zero input (token ids all padding,
                                 a feature vector of zeros): fails when a whole batch is, warns
                                 when any example is
    ``identical_batches`` T52    consecutive batches with equal inputs and labels (fails)
    ``labels``            T52    label counts over the inspected batches (warns on one class)
    ``single_class``      T52    batches holding one class only: data sorted by label?
    ``label_mix``         T52    the inspected batches' class shares against the training split's
                                 (the data module's ``class_counts``): warns when a class is off
                                 by more than 3 standard errors and 5 points (length bucketing
                                 without class-keeping batches, a loader that reads by class)
    ``padding``           T52    share of padded time steps (warns above ``max_padding_share``)
    ``first_loss``        T53    first training loss vs ln C, within ``loss_tolerance`` (relative)
    ====================  =====  ==================================================================

    The table is printed to the console; each finding goes to the W&B summary as
    ``sanity/<check>`` (``status``, ``value``, ``detail``) with ``sanity/warnings`` and
    ``sanity/failures`` counts, and to ``sanity_checks.json`` in the run directory.

    Args:
        num_batches: training batches to inspect (at least 2, to compare consecutive ones).
        max_params_per_example: warn when parameters outside embeddings and convolutions per training
            example exceed this.
        loss_tolerance: the first loss may differ from ln C by this share of ln C.
        max_padding_share: warn when more than this share of the time steps (token positions) is padding.
        strict: raise ``RuntimeError`` after the report when a check fails, instead of warning.

    Raises:
        ValueError: ``num_batches`` < 2, or a threshold that is not positive.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.SanityChecks   # T50, T52, T53
              init_args:
                num_batches: 3
                max_params_per_example: 100
                loss_tolerance: 0.25       # first loss within 25% of ln C
    """

    fit_start_order = 40

    def __init__(
        self,
        num_batches: int = 3,
        max_params_per_example: float = 100.0,
        loss_tolerance: float = 0.25,
        max_padding_share: float = 0.75,
        strict: bool = False,
    ) -> None:
        if not (isinstance(num_batches, int) and num_batches >= 2):
            raise ValueError(
                f"num_batches must be an integer >= 2 (consecutive batches are compared), got {num_batches}."
            )
        for name, value in (("max_params_per_example", max_params_per_example), ("loss_tolerance", loss_tolerance)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}.")
        if not 0 < max_padding_share <= 1:
            raise ValueError(f"max_padding_share must be in (0, 1], got {max_padding_share}.")
        self.num_batches = num_batches
        self.max_params_per_example = float(max_params_per_example)
        self.loss_tolerance = float(loss_tolerance)
        self.max_padding_share = float(max_padding_share)
        self.strict = strict
        self.done = False  # checked in an earlier fit of this run (restored on resume)
        self.findings: list[Finding] = []
        self._active = False

    # ------------------------------------------------------------------ hooks
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.done = False  # a new fit checks again; a resumed one gets `done` back from its checkpoint

    @override
    def fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._active = not self.done and not trainer.fast_dev_run
        self.findings = []
        self._batches: list[Any] = []
        self._first_loss: Optional[float] = None
        self._stepped = False
        params = [(n, p) for n, p in pl_module.named_parameters() if p.requires_grad]
        shared_ids = {  # weight-shared layers: a row per token, a filter per image position
            id(p) for m in pl_module.modules() if isinstance(m, SHARED_LAYERS) for p in m.parameters(recurse=False)
        }
        self._params = sum(p.numel() for _, p in params)
        self._dense_params = sum(p.numel() for _, p in params if id(p) not in shared_ids)

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self._active and len(self._batches) < self.num_batches:
            self._batches.append(batch)

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self._active:
            return
        if not self._stepped:
            self._stepped = True
            loss = _loss_of(outputs)
            self._first_loss = float(loss.detach()) if loss is not None else None
        if len(self._batches) >= self.num_batches or batch_idx + 1 >= trainer.num_training_batches:
            self._finish(trainer, pl_module)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._active:  # fewer batches than num_batches in the whole fit
            self._finish(trainer, pl_module)

    # ------------------------------------------------------------------ the checks
    def _finish(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._active, self.done = False, True
        batches, self._batches = self._batches, []
        self.findings = [
            self._check_params(trainer),
            *self._check_batches(trainer, pl_module, batches),
            self._check_first_loss(trainer, pl_module),
        ]
        self._report(trainer)

    def _train_examples(self, trainer: Trainer) -> Optional[int]:
        loader = trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        try:
            return len(dataset)  # type: ignore[arg-type]
        except TypeError:
            size = getattr(loader, "batch_size", None)
            batches = trainer.num_training_batches
            return int(size * batches) if size and math.isfinite(batches) else None

    def _check_params(self, trainer: Trainer) -> Finding:
        examples = self._train_examples(trainer)
        text = f"{self._params:,} trainable ({self._dense_params:,} outside embeddings and convolutions)"
        if not examples:
            return Finding("params", "T50", "ok", {"params": self._params, "dense_params": self._dense_params},
                           f"{text}; training set size unknown")
        ratio = self._dense_params / examples
        value = {"params": self._params, "dense_params": self._dense_params, "train_examples": examples,
                 "params_per_example": ratio}
        text += f" for {examples:,} training examples: {ratio:.3g} per example"
        if ratio > self.max_params_per_example:
            return Finding("params", "T50", "warn", value,
                           f"{text} (> {self.max_params_per_example:g}): expect overfitting; use a smaller model, "
                           "more data or stronger regularisation (dropout, weight decay)")
        return Finding("params", "T50", "ok", value, text)

    def _check_batches(self, trainer: Trainer, pl_module: LightningModule, batches: list[Any]) -> list[Finding]:
        if not batches:
            return [Finding("shapes", "T52", "warn", None, "no training batch was seen")]
        findings = []
        split = [split_batch(b) for b in batches]
        inputs0, labels0 = split[0]
        shapes = {name: [list(t.shape), str(t.dtype).replace("torch.", "")] for name, t in inputs0}
        if labels0 is not None:
            shapes["labels"] = [list(labels0.shape), str(labels0.dtype).replace("torch.", "")]
        shape_text = ", ".join(f"{n} {s}" for n, (s, _) in shapes.items()) or "no tensors"
        empty = [n for inputs, _ in split for n, t in inputs if t.numel() == 0]
        findings.append(Finding("shapes", "T52", "fail" if empty or not inputs0 else "ok", shapes,
                                shape_text + (f"; empty inputs: {', '.join(sorted(set(empty)))}" if empty else "")))

        floats = [t for inputs, _ in split for _, t in inputs if t.is_floating_point()]
        nonfinite = sum(int((~torch.isfinite(t)).sum()) for t in floats)
        findings.append(Finding("nonfinite_inputs", "T52", "fail" if nonfinite else "ok", nonfinite,
                                f"{nonfinite} NaN/Inf input values: clean or impute the data before training"
                                if nonfinite else "no NaN/Inf in the inputs"))

        zero_rows = total_rows = zero_batches = 0
        for inputs, _ in split:
            # per-example feature tensors only (token ids, features), not per-example scalars such as lengths
            rows = [t.reshape(t.shape[0], -1) for _, t in inputs if t.dim() >= 2 and t.shape[0] > 0]
            if not rows or len({r.shape[0] for r in rows}) != 1:
                continue
            all_zero = torch.stack([(r == 0).all(dim=1) for r in rows]).any(dim=0)
            zero_rows += int(all_zero.sum())
            total_rows += all_zero.numel()
            zero_batches += int(bool(all_zero.all()))
        share = zero_rows / total_rows if total_rows else 0.0
        status = "fail" if zero_batches else "warn" if zero_rows else "ok"
        detail = (f"{zero_batches} of {len(split)} batches are all zeros: the inputs never reach the model "
                  "(check loading, normalisation, the vocabulary)" if zero_batches else
                  f"{zero_rows} examples ({share:.1%}) have all-zero inputs (empty texts?)" if zero_rows else
                  "no all-zero examples")
        findings.append(Finding("zero_inputs", "T52", status, share, detail))

        repeats = sum(_same(a, b) for a, b in zip(batches, batches[1:]))
        findings.append(Finding("identical_batches", "T52", "fail" if repeats else "ok", repeats,
                                f"{repeats} of {len(batches) - 1} consecutive pairs are identical: the loader repeats "
                                "one batch (a cached iterator, a sampler bug?)" if repeats else
                                "consecutive batches differ"))

        labels = [lab for _, lab in split if lab is not None]
        if labels:
            names = label_names(trainer)
            counts = Counter(int(v) for lab in labels for v in lab.flatten().tolist())
            shown = {(names[k] if names and 0 <= k < len(names) else str(k)): n for k, n in sorted(counts.items())}
            total = sum(counts.values())
            text = ", ".join(f"{k} {n / total:.0%}" for k, n in shown.items())
            findings.append(Finding("labels", "T52", "warn" if len(counts) < 2 else "ok", shown,
                                    f"only one class in {len(labels)} batches ({text}): shuffle the training data"
                                    if len(counts) < 2 else text))
            single = sum(1 for lab in labels if lab.numel() > 1 and lab.unique().numel() == 1)
            findings.append(Finding("single_class", "T52", "warn" if single else "ok", single,
                                    f"{single} of {len(labels)} batches hold a single class: is the data sorted by "
                                    "label? shuffle it" if single else "every batch mixes classes"))
            data = classification_data(trainer)
            if data is not None:
                findings.append(label_mix(counts, list(data.class_counts("train")), names))

        share = padding_share(batches, pad_index(trainer, pl_module))
        if share is not None:
            status = "warn" if share > self.max_padding_share else "ok"
            data = trainer.datamodule
            if getattr(data, "bucketing", False) and getattr(data, "stratified_batches", False):
                advice = ("batches that keep the class mix pad one class's short examples to another's long ones; "
                          "data.stratified_batches false trades the mix for less padding, a lower max_length cuts it")
            else:
                advice = "bucket examples by length or set a max_length (T43)"
            findings.append(Finding("padding", "T52", status, share,
                                    f"{share:.0%} of the time steps are padding: {advice}" if status == "warn"
                                    else f"{share:.0%} padding"))
        return findings

    def _check_first_loss(self, trainer: Trainer, pl_module: LightningModule) -> Finding:
        expected, loss = _expected_loss(trainer, pl_module), self._first_loss
        value = {"first_loss": loss, "expected": expected}
        if loss is None:
            reason = "training_step returned no loss" if self._stepped else "no training step ran"
            return Finding("first_loss", "T53", "warn", value, reason)
        if not math.isfinite(loss):
            return Finding("first_loss", "T53", "fail", value,
                           f"the first loss is {loss}: NaN/Inf before any update; check the inputs and the loss")
        if expected is None:
            return Finding("first_loss", "T53", "ok", value, f"first loss {loss:.4g} (number of classes unknown)")
        gap = (loss - expected) / expected
        text = f"first loss {loss:.4g} vs ln C = {expected:.4g} ({gap:+.0%})"
        if gap > self.loss_tolerance:
            return Finding("first_loss", "T53", "warn", value,
                           f"{text}: the untrained model is confidently wrong; use a smaller init scale or "
                           "zero the output layer's bias, check the loss reduction (mean, T11)")
        if gap < -self.loss_tolerance:
            return Finding("first_loss", "T53", "warn", value,
                           f"{text}: lower than chance before training; do labels leak into the inputs?")
        return Finding("first_loss", "T53", "ok", value, text)

    # ------------------------------------------------------------------ reporting
    def _report(self, trainer: Trainer) -> None:
        warnings_ = [f for f in self.findings if f.status == "warn"]
        failures = [f for f in self.findings if f.status == "fail"]
        folder = run_directory(trainer)  # on every rank: it may broadcast
        if trainer.is_global_zero:
            from rich.console import Console
            from rich.table import Table

            table = Table("check", "T", "status", "finding", title="SanityChecks", title_justify="left")
            for f in self.findings:
                table.add_row(f.check, f.trick, f"[{_STYLE[f.status]}]{f.status}[/]", f.detail)
            Console(soft_wrap=False).print(table)
            write_report(trainer, folder, "sanity_checks.json",
                         json.dumps([asdict(f) for f in self.findings], indent=1, default=str))
            summary: dict[str, Any] = {f"sanity/{f.check}": {"status": f.status, "value": f.value, "detail": f.detail}
                                       for f in self.findings}
            report_summary(trainer, {**summary, "sanity/warnings": len(warnings_), "sanity/failures": len(failures)},
                           folder)
        text = "; ".join(f"{f.check}: {f.detail}" for f in failures + warnings_)
        # one decision for all ranks (each inspected its own batches): stop if any rank failed
        if self.strict and trainer.strategy.reduce_boolean_decision(bool(failures), all=False):
            raise RuntimeError(f"SanityChecks failed: {text or 'on another rank'}")
        if warnings_ or failures:
            notice(__name__, f"SanityChecks: {len(failures)} failed, {len(warnings_)} warnings. {text}")
        else:
            rank_zero_info("SanityChecks: all checks passed.")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = state_dict.get("done", False)
