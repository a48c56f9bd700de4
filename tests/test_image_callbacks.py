"""The shared callbacks on a CNN and real images (the bundled digits): T07/T06 batch-size search, T20 WeightInit's
convolution path, T33 MaxNorm on convolution kernels, T56 dead ReLUs per channel, T50 parameters per example with
convolutions counted apart, and the test images with their predictions."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from callbacks import BatchSizeSearch, Introspection, LRFinder, MaxNorm, PredictionExamples, SanityChecks, WeightInit
from callbacks.batch_size import search_trials
from callbacks.figures import pick_examples
from callbacks.introspection import dead_share
from callbacks.max_norm import default_parameters
from callbacks.wandb_io import run_directory
from datamodules import ImageClassificationDataModule


class TinyCNN(LightningModule):
    """conv → BN → ReLU → pool → linear on 8x8 digits; ``lr`` for the finders, ``dead`` switches channel 0 off."""

    def __init__(self, lr: float = 0.01, width: int = 8, dead: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(width, 10)
        self.lr = lr
        self.batches: list[int] = []
        if dead:
            with torch.no_grad():
                self.conv.weight[0].zero_()
                self.conv.bias[0] = -100.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv(images)).mean(dim=(2, 3)))

    def training_step(self, batch, batch_idx):
        self.batches.append(len(batch["labels"]))
        loss = nn.functional.cross_entropy(self(batch["images"]), batch["labels"])
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", nn.functional.cross_entropy(self(batch["images"]), batch["labels"]))

    def test_step(self, batch, batch_idx):
        return {"logits": self(batch["images"])}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def trainer(root, callbacks=(), **kwargs) -> Trainer:
    arguments = dict(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                     enable_checkpointing=False, default_root_dir=str(root), num_sanity_val_steps=0)
    arguments.update(kwargs)
    return Trainer(callbacks=list(callbacks), **arguments)


# ----------------------------------------------------------------------------- T07 + T06
def test_search_trials():
    assert search_trials(16, 100) == 3 and search_trials(16, 16) == 1 and search_trials(16, 8) == 1


class SeenByFinder(LRFinder):
    """The LR finder, recording the batch size it sweeps with."""

    def fit_start(self, trainer, pl_module):
        self.batch_size = trainer.datamodule.batch_size
        super().fit_start(trainer, pl_module)


def test_the_search_doubles_up_to_the_cap_restores_the_weights_and_scales_the_lr(tmp_path):
    """1,008 training digits, at least 10 steps an epoch: 16 -> 32 -> 64 (128 would leave 8); the LR x 4 (T06)."""
    torch.manual_seed(0)
    data = ImageClassificationDataModule(dataset="digits", batch_size=16)
    model = TinyCNN(lr=0.01)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    class Weights(Callback):  # the weights training starts from, after the search's trial steps
        def on_train_start(self, trainer, pl_module):
            self.start = {k: v.clone() for k, v in pl_module.state_dict().items()}

    search, weights = BatchSizeSearch(min_steps_per_epoch=10), Weights()
    trainer(tmp_path, [search, weights], max_steps=2).fit(model, datamodule=data)
    assert (search.start, search.found, search.scale) == (16, 64, 4.0)
    assert data.batch_size == 64 and model.batches[-2:] == [64, 64]  # training ran at the found size
    assert model.lr == pytest.approx(0.04) and trainer_lr(model) == pytest.approx(0.04)
    for key, value in before.items():
        torch.testing.assert_close(weights.start[key], value)  # the trial steps left no trace
    assert not list(tmp_path.glob(".scale_batch_size_*.ckpt"))


def trainer_lr(model) -> float:
    return model.trainer.optimizers[0].param_groups[0]["lr"]


def test_the_lr_finder_runs_after_the_search_at_the_found_batch_size(tmp_path):
    torch.manual_seed(0)
    data = ImageClassificationDataModule(dataset="digits", batch_size=16)
    finder = SeenByFinder(num_steps=20, max_lr=1.0)
    trainer(tmp_path, [finder, BatchSizeSearch(max_batch_size=32)], max_steps=1).fit(TinyCNN(), datamodule=data)
    assert finder.batch_size == 32  # the search (order 25) before the finder (order 30), whatever the list order


def test_a_small_training_set_keeps_the_batch_size_and_says_why(tmp_path, caplog):
    data = ImageClassificationDataModule(dataset="digits", batch_size=128)
    search = BatchSizeSearch(min_steps_per_epoch=10)
    with caplog.at_level("INFO"):
        trainer(tmp_path, [search], max_steps=1).fit(TinyCNN(), datamodule=data)
    assert search.found == 128 and search.scale == 1.0
    assert ("BatchSizeSearch: keeping batch size 128: 1,008 training examples, and a larger batch would leave an epoch "
            "fewer than 10 steps.") in caplog.text


def test_a_resumed_run_trains_at_the_searched_size_without_searching_again(tmp_path):
    torch.manual_seed(0)
    data = ImageClassificationDataModule(dataset="digits", batch_size=16)
    first = trainer(tmp_path, [BatchSizeSearch(max_batch_size=32)], max_steps=2)
    first.fit(TinyCNN(lr=0.01), datamodule=data)
    first.save_checkpoint(tmp_path / "mid.ckpt")
    fresh_data = ImageClassificationDataModule(dataset="digits", batch_size=16)
    model, search = TinyCNN(lr=0.01), BatchSizeSearch(max_batch_size=32)
    trainer(tmp_path, [search], max_epochs=2, max_steps=4).fit(model, datamodule=fresh_data,
                                                               ckpt_path=tmp_path / "mid.ckpt")
    assert fresh_data.batch_size == 32 and model.batches and set(model.batches) == {32}  # no trial at 16
    assert model.lr == pytest.approx(0.02) and trainer_lr(model) == pytest.approx(0.02)


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "grow"}, "mode must be one of power, binsearch, got 'grow'."),
    ({"max_batch_size": 0}, "max_batch_size must be a whole number >= 1, got 0."),
    ({"min_steps_per_epoch": 1.5}, "min_steps_per_epoch must be a whole number >= 1, got 1.5."),
])
def test_bad_search_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        BatchSizeSearch(**kwargs)
    assert str(error.value) == message


# ----------------------------------------------------------------------------- T20, T33, T56, T50 on convolutions
def test_weight_init_gives_convolutions_he_init_and_zero_biases():
    """T20: kaiming_normal on a conv kernel has std sqrt(2 / fan_in); its bias is zeroed; the rows say so."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 64, 5, bias=True), nn.ReLU(), nn.Conv1d(3, 4, 2, bias=False))
    rows = WeightInit(conv="kaiming_normal", linear="keep").initialise(model)
    fan_in = 16 * 5 * 5
    assert model[0].weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)
    assert torch.count_nonzero(model[0].bias) == 0
    assert rows == [{"parameter": "0.weight", "shape": [64, 16, 5, 5], "init": "kaiming_normal"},
                    {"parameter": "0.bias", "shape": [64], "init": "zeros"},
                    {"parameter": "2.weight", "shape": [4, 3, 2], "init": "kaiming_normal"}]


def test_max_norm_caps_every_convolution_filter(tmp_path):
    """T33 on convolutions: each output filter's incoming weights (a row of the flattened kernel) capped."""
    torch.manual_seed(0)
    model = TinyCNN(lr=5.0)
    assert default_parameters(model) == ["conv.weight", "head.weight"]
    cap = MaxNorm(max_value=0.5)
    trainer(tmp_path, [cap], max_steps=3).fit(model, datamodule=ImageClassificationDataModule(dataset="digits"))
    norms = model.conv.weight.detach().flatten(1).norm(dim=1)
    assert len(norms) == 8 and norms.max() <= 0.5 + 1e-5


def test_dead_relus_are_counted_per_channel():
    """T56: a channel off at every pixel of every image is dead; one off at some pixels is not."""
    maps = torch.rand(4, 8, 5, 5) + 0.1
    maps[:, 3] = 0.0
    maps[:, 5, :, :2] = 0.0  # off at some pixels only
    assert dead_share(maps) == pytest.approx(1 / 8)
    assert dead_share(torch.tensor([[0.0, 1.0], [0.0, 2.0]])) == pytest.approx(0.5)  # [B, F]: features


def test_introspection_logs_the_dead_channel_share_of_a_cnn(tmp_path):
    torch.manual_seed(0)
    logger = CSVLogger(str(tmp_path), name="intro")
    trainer(tmp_path, [Introspection(every_n_steps=1)], max_steps=2, logger=logger, log_every_n_steps=1).fit(
        TinyCNN(dead=True), datamodule=ImageClassificationDataModule(dataset="digits"))
    logger.finalize("success")
    rows = (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    column = header.index("intro/act/relu/dead")
    values = [float(row.split(",")[column]) for row in rows[1:] if row.split(",")[column]]
    assert values and all(value == pytest.approx(1 / 8) for value in values)  # channel 0 of 8


def test_sanity_checks_count_convolutions_apart_from_dense_parameters(tmp_path):
    """T50: a CNN with ~300 convolution parameters per example is not "expect overfitting"; a wide head is."""

    class Wide(TinyCNN):
        def __init__(self, width: int, head_width: int = 0) -> None:
            super().__init__(width=width)
            self.conv = nn.Conv2d(1, width, 7, padding=3)
            self.head = nn.Sequential(nn.Linear(width, head_width or 10), nn.Linear(head_width or 10, 10))

    data = ImageClassificationDataModule(dataset="digits")
    convolutional = SanityChecks()
    trainer(tmp_path, [convolutional], max_steps=1).fit(Wide(width=6000), datamodule=data)
    params = next(f for f in convolutional.findings if f.check == "params")
    assert params.value["params"] / 1008 > 300 and params.status == "ok", params
    assert "outside embeddings and convolutions" in params.detail
    dense = SanityChecks()
    trainer(tmp_path, [dense], max_steps=1).fit(Wide(width=8, head_width=20000), datamodule=data)
    assert next(f for f in dense.findings if f.check == "params").status == "warn"


# ----------------------------------------------------------------------------- predictions shown
def test_pick_examples_shows_wrong_ones_first_up_to_half():
    wrong = torch.tensor([False] * 10 + [True] * 3)
    assert pick_examples(wrong, 4) == [10, 11, 0, 1]
    assert pick_examples(torch.tensor([True] * 5 + [False]), 4) == [0, 1, 2, 5]  # too few right: more wrong


def test_prediction_examples_draw_test_images_with_their_labels(tmp_path):
    torch.manual_seed(0)
    data = ImageClassificationDataModule(dataset="digits")
    shown = PredictionExamples(count=12)
    run = trainer(tmp_path, [shown], max_steps=3, logger=CSVLogger(str(tmp_path), name="pred"))
    model = TinyCNN(lr=0.1)
    run.fit(model, datamodule=data)
    run.test(model, datamodule=data, verbose=False)
    assert shown.path == run_directory(run) / "predictions_test.png" and shown.path.stat().st_size > 0
    kept = shown._kept
    assert sum(k["wrong"] for k in kept) >= 6  # a model after 3 steps gets many wrong: half the figure
    assert all(0 <= k["predicted"] < 10 and 0 <= k["true"] < 10 for k in kept)


def test_prediction_examples_refuse_a_count_below_one():
    with pytest.raises(ValueError) as error:
        PredictionExamples(count=0)
    assert str(error.value) == "count must be >= 1, got 0."
