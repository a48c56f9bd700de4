"""WeightInit (T20-T22): schemes per layer type, orthogonal gate blocks, forget-gate bias sums, fit-start order."""

from __future__ import annotations

import glob
import json
import math

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from torch import nn

from callbacks.fit_start import FitStartStep
from callbacks.wandb_io import read_offline_run
from callbacks.weight_init import SCHEMES, WeightInit
from datamodules import TextClassificationDataModule
from tests.helpers_callbacks import TinyLSTM, fit


def gate_blocks(weight: torch.Tensor, hidden: int) -> list[torch.Tensor]:
    return list(weight.detach().split(hidden, dim=0))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_gate_blocks_orthogonal_and_forget_bias_sums_to_target(bidirectional):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 7, num_layers=2, bidirectional=bidirectional)
    rows = WeightInit(forget_bias=1.5).initialise(nn.ModuleDict({"rnn": lstm}))
    suffixes = ["", "_reverse"] if bidirectional else [""]
    for layer in range(2):
        for suffix in suffixes:
            weight_hh = getattr(lstm, f"weight_hh_l{layer}{suffix}")
            for block in gate_blocks(weight_hh, 7):  # i, f, g, o: each 7x7 block orthogonal on its own
                torch.testing.assert_close(block @ block.T, torch.eye(7), atol=1e-5, rtol=0)
            total = getattr(lstm, f"bias_ih_l{layer}{suffix}") + getattr(lstm, f"bias_hh_l{layer}{suffix}")
            i, f, g, o = gate_blocks(total, 7)
            assert torch.equal(f, torch.full((7,), 1.5))
            assert not i.any() and not g.any() and not o.any()
            # Glorot-uniform per gate block: fan_in = input size, fan_out = 7
            weight_ih = getattr(lstm, f"weight_ih_l{layer}{suffix}")
            bound = math.sqrt(6 / (weight_ih.shape[1] + 7))
            assert weight_ih.abs().max() <= bound and weight_ih.abs().max() > 0.8 * bound
    assert {row["init"] for row in rows} >= {"orthogonal per gate block (4)", "zeros, forget gate 1.5"}
    assert len(rows) == 4 * 2 * len(suffixes)


def test_gru_blocks_orthogonal_and_all_biases_zero():
    gru = nn.GRU(4, 6)
    WeightInit().initialise(gru)
    for block in gate_blocks(gru.weight_hh_l0, 6):
        torch.testing.assert_close(block @ block.T, torch.eye(6), atol=1e-5, rtol=0)
    assert not gru.bias_ih_l0.any() and not gru.bias_hh_l0.any()


@pytest.mark.parametrize(
    "scheme, check",
    [
        ("uniform", lambda w: 0.045 < w.abs().max() <= 0.05),
        ("xavier_uniform", lambda w: 0.9 * math.sqrt(6 / 700) < w.abs().max() <= math.sqrt(6 / 700)),
        ("xavier_normal", lambda w: abs(w.std() - math.sqrt(2 / 700)) < 0.03 * math.sqrt(2 / 700)),
        ("kaiming_uniform", lambda w: 0.9 * math.sqrt(6 / 400) < w.abs().max() <= math.sqrt(6 / 400)),
        ("kaiming_normal", lambda w: abs(w.std() - math.sqrt(2 / 400)) < 0.03 * math.sqrt(2 / 400)),
        ("lecun_normal", lambda w: abs(w.std() - 1 / 20) < 0.03 / 20),  # Gaussian 1/sqrt(n), n = 400
        ("orthogonal", lambda w: torch.allclose(w @ w.T, torch.eye(300), atol=1e-4)),
    ],
)
def test_linear_schemes(scheme, check):
    torch.manual_seed(0)
    layer = nn.Linear(400, 300)
    WeightInit(linear=scheme, uniform_scale=0.05).initialise(layer)
    assert check(layer.weight.detach())
    assert not layer.bias.any()


def test_embeddings_kept_by_default_excluded_modules_untouched_and_padding_row_zero():
    torch.manual_seed(0)
    model = nn.ModuleDict({"embedding": nn.Embedding(30, 8, padding_idx=0), "head": nn.Linear(8, 2),
                           "body": nn.Linear(8, 8)})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    WeightInit(exclude=["head"]).initialise(model)
    assert torch.equal(model.embedding.weight, before["embedding.weight"])
    assert torch.equal(model.head.weight, before["head.weight"]) and torch.equal(model.head.bias, before["head.bias"])
    assert not torch.equal(model.body.weight, before["body.weight"])
    WeightInit(embedding="uniform", uniform_scale=0.1).initialise(model)
    assert not model.embedding.weight[0].any() and model.embedding.weight[1:].abs().max() <= 0.1


class EmbeddingInit(FitStartStep):
    """Stands in for the word2vec initialiser (order 20, declares it initialises the embeddings): records what it
    finds, then writes the embedding."""

    fit_start_order = 20
    initialises = frozenset({"embeddings"})

    def fit_start(self, trainer, pl_module):
        lstm = pl_module.rnn
        self.forget_sum = (lstm.bias_ih_l0 + lstm.bias_hh_l0)[12:24].detach().clone()
        self.embedding_at_start = pl_module.embedding.weight.detach().clone()


class FinderProbe(FitStartStep):
    fit_start_order = 30

    def fit_start(self, trainer, pl_module):
        self.forget_sum = (pl_module.rnn.bias_ih_l0 + pl_module.rnn.bias_hh_l0)[12:24].detach().clone()


def test_runs_first_whatever_the_order_and_leaves_embeddings_to_word2vec():
    word2vec, finder, init = EmbeddingInit(), FinderProbe(), WeightInit(embedding="uniform")
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=200, batch_size=32)
    model = TinyLSTM(data.vocab_size, data.num_classes)
    embedding = model.embedding.weight.detach().clone()
    trainer = Trainer(max_steps=1, callbacks=[finder, word2vec, init], logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, datamodule=data)
    assert torch.equal(word2vec.forget_sum, torch.ones(12)) and torch.equal(finder.forget_sum, torch.ones(12))
    assert torch.equal(word2vec.embedding_at_start, embedding)  # a word2vec init owns the embedding
    assert all(not row["parameter"].startswith("embedding") for row in init.applied)


def test_skipped_on_resume(tmp_path):
    fit([WeightInit(), ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)], epochs=1)
    trained = torch.load(tmp_path / "last.ckpt", weights_only=False)["state_dict"]
    assert not torch.equal((trained["rnn.bias_ih_l0"] + trained["rnn.bias_hh_l0"])[12:24], torch.ones(12))

    class AtStart(Callback):
        def on_train_start(self, trainer, pl_module):
            self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}

    resumed, probe = WeightInit(), AtStart()
    fit([resumed, probe, ModelCheckpoint(dirpath=tmp_path / "b", save_top_k=0)], epochs=2,
        ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.applied == [] and resumed.done
    for key, value in trained.items():
        assert torch.equal(probe.weights[key], value), key


def test_table_reaches_wandb_and_the_run_directory(offline_wandb):
    logger = WandbLogger(project="weight-init-test", save_dir=str(offline_wandb))
    init = WeightInit()
    fit([init], max_steps=1, logger=logger, limit_val_batches=0)
    saved = json.loads((offline_wandb / "weight-init-test" / logger.version / "weight_init.json").read_text())
    assert saved == init.applied and len(saved) == 6  # rnn: 2 kernels + 2 biases; head: weight + bias
    logger.experiment.finish()
    run = read_offline_run(glob.glob(str(offline_wandb / "wandb" / "offline-run-*"))[0])
    tables = [row["weight_init/applied"] for row in run.history if "weight_init/applied" in row]
    assert len(tables) == 1 and tables[0]["_type"] == "table-file" and tables[0]["nrows"] == 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"linear": "he"}, f"unknown linear scheme 'he'; choose one of {', '.join(SCHEMES)}."),
        ({"rnn_recurrent": "svd"}, f"unknown rnn_recurrent scheme 'svd'; choose one of {', '.join(SCHEMES)}."),
        ({"uniform_scale": 0}, "uniform_scale must be > 0, got 0."),
    ],
)
def test_bad_arguments_fail_in_init(kwargs, message):
    with pytest.raises(ValueError) as error:
        WeightInit(**kwargs)
    assert str(error.value) == message


def test_exclude_pattern_matching_nothing_lists_the_modules():
    model = nn.ModuleDict({"rnn": nn.GRU(3, 4), "head": nn.Linear(4, 2)})
    with pytest.raises(ValueError) as error:
        WeightInit(exclude=["encoder.*"]).initialise(model)
    assert str(error.value) == "WeightInit: exclude pattern 'encoder.*' matches no module; the modules are: rnn, head."


def test_weight_dropped_recurrent_kernels_are_initialised_through_the_parametrization():
    from torch.nn.utils import parametrize

    lstm = nn.LSTM(3, 5)
    parametrize.register_parametrization(lstm, "weight_hh_l0", nn.Dropout(0.5))  # DropConnect, as in AWD-LSTM
    WeightInit().initialise(lstm)
    stored = lstm.parametrizations.weight_hh_l0.original
    for block in gate_blocks(stored, 5):
        torch.testing.assert_close(block @ block.T, torch.eye(5), atol=1e-5, rtol=0)
