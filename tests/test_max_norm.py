"""MaxNorm (T33): every unit's incoming weight norm stays within the cap after every optimizer step."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback
from torch import nn
from torch.nn.utils import parametrize

from callbacks.max_norm import MaxNorm, default_parameters
from tests.helpers_callbacks import fit


def row_norms(weight: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(weight.detach(), dim=1)


def test_rows_above_the_cap_are_rescaled_to_it_and_the_rest_untouched():
    layer = nn.Linear(5, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4, 0, 0, 0], [0.1, 0, 0, 0, 0], [0, 0, 10, 0, 0], [1, 1, 1, 1, 1]]))
    cap = MaxNorm(2.0)
    cap.names = cap.resolve(layer)
    assert cap.names == ["weight"]
    capped, rows = cap.apply(layer)
    assert (capped, rows) == (3, 4)
    torch.testing.assert_close(row_norms(layer.weight), torch.tensor([2.0, 0.1, 2.0, 2.0]))
    torch.testing.assert_close(layer.weight[0], torch.tensor([1.2, 1.6, 0, 0, 0]))  # direction kept


def test_default_parameters_are_linear_and_rnn_kernels_also_under_dropconnect():
    model = nn.ModuleDict({"embedding": nn.Embedding(10, 4), "rnn": nn.LSTM(4, 3), "norm": nn.LayerNorm(3),
                           "head": nn.Linear(3, 2)})
    assert default_parameters(model) == ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight"]
    parametrize.register_parametrization(model.rnn, "weight_hh_l0", nn.Identity())
    assert default_parameters(model) == ["rnn.weight_ih_l0", "rnn.parametrizations.weight_hh_l0.original",
                                         "head.weight"]


class Norms(Callback):
    """After MaxNorm (listed before it): the largest row norm of each constrained weight after every step."""

    def __init__(self, names):
        self.names, self.largest = names, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        parameters = dict(pl_module.named_parameters())
        self.largest.append({name: float(row_norms(parameters[name]).max()) for name in self.names})


def test_norms_stay_within_the_cap_after_every_step_of_real_training():
    names = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight"]
    free = Norms(names)
    fit([free], epochs=2, lr=0.05)  # without the constraint some rows grow past the cap
    cap = MaxNorm(0.9)
    capped = Norms(names)
    trainer, model = fit([cap, capped], epochs=2, lr=0.05)
    assert cap.names == names
    assert max(max(step.values()) for step in free.largest) > 0.9
    assert len(capped.largest) == trainer.global_step
    assert all(value <= 0.9 + 1e-5 for step in capped.largest for value in step.values())
    assert 0 < float(trainer.callback_metrics["max_norm/capped"]) <= 1
    assert float(row_norms(model.embedding.weight).max()) > 0.9  # embeddings are not constrained by default


def test_patterns_pick_parameters_by_name():
    cap = MaxNorm(1.0, patterns=["rnn.weight_hh_*"])
    trainer, model = fit([cap], epochs=1, lr=0.05)
    assert cap.names == ["rnn.weight_hh_l0"]
    assert float(row_norms(model.rnn.weight_hh_l0).max()) <= 1.0 + 1e-5


def test_a_pattern_matching_nothing_lists_the_parameters():
    cap = MaxNorm(1.0, patterns=["encoder.*"])
    with pytest.raises(ValueError) as error:
        cap.resolve(nn.ModuleDict({"head": nn.Linear(3, 2)}))
    assert str(error.value) == "MaxNorm: pattern 'encoder.*' matches no parameter; the parameters are: head.weight, head.bias."


@pytest.mark.parametrize("cap", [0, -1.0])
def test_cap_must_be_positive(cap):
    with pytest.raises(ValueError) as error:
        MaxNorm(cap)
    assert str(error.value) == f"max_value must be > 0 (Srivastava et al. 2014 used 3-4), got {cap}."
