"""One order for the one-shot work at fit start, whatever the order of the callbacks in the config.

Lightning calls ``on_fit_start`` in list order (and moves some callbacks around), so a YAML that
lists the LR finder before the weight initialiser would sweep from weights that are about to be
replaced. Callbacks that derive from :class:`FitStartStep` instead implement
:meth:`FitStartStep.fit_start`; the first of them whose ``on_fit_start`` is called runs all of
them, sorted by ``fit_start_order``:

====  =====================================================
10    weight initialisation (``WeightInit``)
20    embedding initialisation (``Word2VecInit``)
30    LR range test (``LRFinder``), which sweeps from and restores to the initialised weights
40    pre-flight checks (``SanityChecks``), which see the weights training starts from
====  =====================================================

Schedules resolve their bounds later, in ``on_train_start``.
"""

from __future__ import annotations

from typing import ClassVar

from lightning.pytorch import Callback, LightningModule, Trainer
from typing_extensions import override


class FitStartStep(Callback):
    """Base class of a callback with one-shot work at fit start, run in ``fit_start_order``."""

    fit_start_order: ClassVar[int] = 50
    #: what the step initialises (``{"embeddings"}`` for ``Word2VecInit``), so that others leave it alone
    initialises: ClassVar[frozenset[str]] = frozenset()

    def fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The one-shot work; called once per ``trainer.fit``, after every step of a lower order."""

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._fit_start_done = False

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        steps = sorted(
            (cb for cb in trainer.callbacks if isinstance(cb, FitStartStep)),
            key=lambda cb: cb.fit_start_order,  # stable: equal orders keep the config's order
        )
        for step in steps:
            if not getattr(step, "_fit_start_done", False):
                step._fit_start_done = True
                step.fit_start(trainer, pl_module)
