"""The one-shot work at fit start runs in ``fit_start_order``, whatever the order of the callbacks."""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer

from callbacks import LRFinder
from callbacks.fit_start import FitStartStep
from datamodules import TextClassificationDataModule


class Step(FitStartStep):
    def __init__(self, order: int, journal: list) -> None:
        self.fit_start_order, self.journal = order, journal

    def fit_start(self, trainer, pl_module) -> None:
        # what the module's weights look like when this step runs
        self.journal.append((self.fit_start_order, float(pl_module.head.weight.detach().sum())))
        if self.fit_start_order == 10:  # stands in for a weight initialiser
            torch.nn.init.zeros_(pl_module.head.weight)


def fit(model, callbacks, root, max_steps=1):
    trainer = Trainer(max_steps=max_steps, callbacks=callbacks, logger=False, default_root_dir=root, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=TextClassificationDataModule(limit=200, batch_size=32))
    return trainer


def test_steps_run_by_order_once_per_fit(tiny_model_class, tmp_path):
    journal: list = []
    steps = [Step(40, journal), Step(10, journal), Step(30, journal)]
    model = tiny_model_class(2000, 2)
    fit(model, steps, tmp_path)
    assert [order for order, _ in journal] == [10, 30, 40]
    assert journal[0][1] != 0.0 and journal[1][1] == journal[2][1] == 0.0  # later steps see the init

    trainer = fit(model, steps, tmp_path, max_steps=2)  # a second fit runs every step again, once
    assert [order for order, _ in journal] == [10, 30, 40] * 2 and trainer.global_step == 2


def test_the_lr_finder_sweeps_from_and_restores_to_the_initialised_weights(tiny_model_class, tmp_path):
    journal: list = []
    finder = LRFinder(min_lr=1e-4, max_lr=1.0, num_steps=20)
    torch.manual_seed(0)
    fit(tiny_model_class(2000, 2), [Step(40, journal), finder, Step(10, journal)], tmp_path)
    assert finder.steps_run == 20
    # the initialiser, listed last, ran first; after 20 sweep steps the finder restored its zeros
    assert [order for order, _ in journal] == [10, 40] and journal[0][1] != 0.0 and journal[1][1] == 0.0


def test_weight_init_then_word2vec_then_the_lr_finder_whatever_the_config_order(tiny_model_class, tmp_path):
    """The fit-start order (callbacks/fit_start.py) with the real callbacks, listed backwards: each sees the previous one's work."""
    from callbacks import WeightInit, Word2VecInit

    journal: list = []

    class Snapshot(FitStartStep):
        def __init__(self, order: int) -> None:
            self.fit_start_order = order

        def fit_start(self, trainer, pl_module) -> None:
            journal.append((self.fit_start_order, pl_module.embedding.weight.detach().clone(),
                            pl_module.head.weight.detach().clone()))

    data = TextClassificationDataModule(limit=200, batch_size=32)
    torch.manual_seed(0)
    model = tiny_model_class(data.vocab_size, 2)
    initial_head = model.head.weight.detach().clone()
    finder = LRFinder(min_lr=1e-4, max_lr=1.0, num_steps=20)
    word2vec = Word2VecInit(epochs=1, min_count=1, cache_dir=None)
    callbacks = [Snapshot(40), finder, Snapshot(25), word2vec, Snapshot(15), WeightInit(linear="lecun_normal")]
    trainer = Trainer(max_steps=1, callbacks=callbacks, logger=False, default_root_dir=tmp_path,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data)
    (_, emb15, head15), (_, emb25, head25), (_, emb40, head40) = sorted(journal, key=lambda entry: entry[0])
    assert not torch.equal(head15, initial_head)  # WeightInit ran first ...
    assert torch.equal(head25, head15) and not torch.equal(emb25, emb15)  # ... then word2vec, on the embedding only
    assert finder.steps_run == 20  # the finder swept, then restored the word2vec-initialised weights
    assert torch.equal(emb40, emb25) and torch.equal(head40, head25)
