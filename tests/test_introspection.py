"""Introspection (T56): gate norms, gradient norms, dead and saturated units, NaN counts, read back from W&B."""

from __future__ import annotations

import json
import math

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from callbacks.introspection import Introspection
from callbacks.wandb_io import read_offline_run
from datamodules import TextClassificationDataModule


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """Runs without a logger write their files into the working directory: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


HIDDEN = 8


class RecurrentProbe(LightningModule):
    """Embedding → packed LSTM/GRU → Linear → ReLU or tanh → Linear, on MR."""

    def __init__(self, vocab_size, num_classes, rnn="lstm", activation="relu", bias=0.0, scale=1.0, lr=0.05):
        super().__init__()
        self.lr = lr
        self.embedding = nn.Embedding(vocab_size, 16, padding_idx=0)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[rnn](16, HIDDEN, batch_first=True)
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]()
        self.body = nn.Sequential(nn.Linear(HIDDEN, 32), act, nn.Linear(32, num_classes))
        with torch.no_grad():
            self.body[0].weight.mul_(scale)
            self.body[0].bias.fill_(bias)

    def training_step(self, batch, batch_idx):
        packed = pack_padded_sequence(self.embedding(batch["tokens"]), batch["lengths"], batch_first=True,
                                      enforce_sorted=False)
        _, hidden = self.rnn(packed)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        return nn.functional.cross_entropy(self.body(hidden[-1]), batch["labels"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def fit(model, intro, *, logger=False, steps=8, log_every=1):
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    trainer = Trainer(max_steps=steps, callbacks=[intro], logger=logger, log_every_n_steps=log_every,
                      limit_val_batches=0, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False)
    trainer.fit(model(data.vocab_size, data.num_classes), datamodule=data)
    return trainer


def model(**kwargs):
    def build(vocab_size, num_classes):
        torch.manual_seed(0)
        return RecurrentProbe(vocab_size, num_classes, **kwargs)

    return build


def logged(root, build, intro, **kwargs):
    before = set((root / "wandb").glob("offline-run-*"))
    logger = WandbLogger(project="intro-test", save_dir=str(root))
    try:
        fit(build, intro, logger=logger, **kwargs)
    finally:
        logger.experiment.finish()
    (run_dir,) = set((root / "wandb").glob("offline-run-*")) - before
    run = read_offline_run(run_dir)
    assert run.exit_code == 0
    return run, logger


def test_gate_norms_and_gradients_reach_wandb_at_low_frequency(offline_wandb):
    intro = Introspection(every_n_steps=4, histograms=True, bins=8)
    run, logger = logged(offline_wandb, model(lr=0.0), intro, steps=12, log_every=2)
    weights = [f"intro/rnn.weight_{kind}_l0/{gate}/weight" for kind in ("ih", "hh") for gate in "ifgo"]
    for key in weights + [k.replace("/weight", "/grad").replace("/weight", "") for k in weights]:
        assert len(run.metric(key)) == 3, key  # steps 4, 8 and 12 of 12
    # lr 0: the weights never move, so each logged gate norm equals that gate's rows of the kernel
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    reference = RecurrentProbe(data.vocab_size, data.num_classes)
    for index, gate in enumerate("ifgo"):
        rows = reference.rnn.weight_hh_l0[index * HIDDEN:(index + 1) * HIDDEN]
        assert run.metric(f"intro/rnn.weight_hh_l0/{gate}/weight") == pytest.approx([float(rows.detach().norm())] * 3, rel=1e-5)
    assert all(g > 0 for g in run.metric("intro/rnn.weight_hh_l0/f/grad"))
    assert all(g > 0 for g in run.metric("intro/grad/body.0")) and run.metric("intro/nonfinite_total") == [0, 0, 0]
    assert 0 <= run.metric("intro/act/rnn/saturated")[0] < 1 and run.metric("intro/act/body.1/std")[0] > 0
    histograms = run.metric("intro/hist/weight/rnn.weight_hh_l0")
    assert len(histograms) == 3 and histograms[0]["_type"] == "histogram" and len(histograms[0]["values"]) == 8
    lines = (offline_wandb / "intro-test" / logger.version / "introspection_histograms.jsonl").read_text().splitlines()
    assert {json.loads(line)["tensor"] for line in lines} >= {"weight/rnn.weight_hh_l0", "grad/rnn.weight_hh_l0"}


def test_dead_relus_are_reported(offline_wandb):
    run, _ = logged(offline_wandb, model(bias=-100.0), Introspection(every_n_steps=4), steps=8)
    assert run.metric("intro/act/body.1/dead") == [1.0, 1.0]  # a bias of -100: every unit is 0 for every example
    assert run.metric("intro/act/body.1/mean") == [0.0, 0.0]
    healthy = Introspection(every_n_steps=4)
    fit(model(), healthy)
    assert healthy.last["intro/act/body.1/dead"] < 0.5


def test_saturated_tanh_is_reported():
    saturated, healthy = Introspection(every_n_steps=2), Introspection(every_n_steps=2)
    fit(model(activation="tanh", scale=1000.0), saturated, steps=2)
    fit(model(activation="tanh"), healthy, steps=2)
    assert saturated.last["intro/act/body.1/saturated"] > 0.9
    assert healthy.last["intro/act/body.1/saturated"] < 0.1


def test_gru_gates_are_r_z_n():
    intro = Introspection(every_n_steps=2)
    fit(model(rnn="gru"), intro, steps=2)
    assert {key.split("/")[2] for key in intro.last if key.startswith("intro/rnn.weight_ih_l0/")} == set("rzn")


def test_nan_values_are_counted_not_dropped(offline_wandb):
    class Poisoned(RecurrentProbe):
        def on_train_start(self) -> None:
            with torch.no_grad():
                self.body[2].weight[0, :3] = float("nan")

    def build(vocab_size, num_classes):
        torch.manual_seed(0)
        return Poisoned(vocab_size, num_classes, lr=0.0)

    run, _ = logged(offline_wandb, build, Introspection(every_n_steps=1), steps=1)
    assert run.metric("intro/nonfinite/weight/body.2") == [3]
    assert run.metric("intro/nonfinite_total")[0] >= 3  # the NaN also spreads to the gradients and outputs
    norm = run.metric("intro/weight/body.2")[0]
    assert math.isfinite(norm) and norm > 0  # taken over the finite values


def test_measures_exactly_every_n_steps_whatever_the_logging_interval(offline_wandb):
    run, _ = logged(offline_wandb, model(), Introspection(every_n_steps=3), steps=10, log_every=4)
    rows = [row for row in run.history if "intro/nonfinite_total" in row]
    assert [row["trainer/global_step"] for row in rows] == [2, 5, 8]  # the 3rd, 6th and 9th steps, before the update


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every_n_steps": 0}, "every_n_steps must be an integer >= 1, got 0."),
        ({"bins": 0}, "bins must be an integer >= 1, got 0."),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        Introspection(**kwargs)
    assert str(error.value) == message
