"""OptimizerSwitch (T05): Adam → SGD at the right step with SWATS's LR; the active optimizer survives a resume.

Also the DDP test of the stateful stability callbacks (WeightInit, AutoClip, OptimizerSwitch,
EarlyStopping): two CPU processes must end in the same state.
"""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.optimizer_switch import OptimizerSwitch
from tests.helpers_callbacks import RNGState, fit

STEPS_PER_EPOCH = 8  # 400 MR sentences → 252 training examples → 8 batches of 32


class Optimizers(Callback):
    """The active optimizer's class and LR at every training step."""

    def __init__(self):
        self.steps = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        optimizer = trainer.optimizers[0]
        self.steps[trainer.global_step] = (type(optimizer).__name__, optimizer.param_groups[0]["lr"])


class Scores(Callback):
    """Logs a prescribed validation score per epoch, so plateaus happen where the test says."""

    def __init__(self, scores):
        self.scores = scores

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            pl_module.log("val/score", self.scores[trainer.current_epoch])


def test_swats_estimate_of_one_adam_step():
    """Adam's first step is -lr·sign(g) (up to eps): γ = pᵀp / -pᵀg = lr·n / Σ|g| per tensor; Λ̂ = γ after one step."""
    weight, bias = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([weight, bias], lr=0.1)
    weight.grad = torch.tensor([0.5, -2.0, 1.0, 0.25])
    bias.grad = torch.tensor([1.0, 1.0])
    switch = OptimizerSwitch(switch_epoch=3)
    switch.on_before_optimizer_step(None, None, optimizer)
    optimizer.step()
    switch.on_train_batch_end(None, None, None, None, 0)
    assert switch.estimate_steps == [1, 1]
    assert switch.sgd_lr_estimates == pytest.approx([0.1 * 4 / 3.75, 0.1], rel=1e-6)


def test_switches_at_the_given_epoch_with_the_swats_lr():
    switch, seen = OptimizerSwitch(monitor=None, switch_epoch=2, momentum=0.9), Optimizers()
    trainer, _ = fit([switch, seen], epochs=3)
    assert switch.switched and switch.switch_step == 2 * STEPS_PER_EPOCH
    assert {seen.steps[s][0] for s in range(2 * STEPS_PER_EPOCH)} == {"Adam"}
    assert {seen.steps[s][0] for s in range(2 * STEPS_PER_EPOCH, 3 * STEPS_PER_EPOCH)} == {"SGD"}
    # SWATS per tensor: SGD gets one group per parameter tensor, at (1 - momentum) x its estimate
    assert switch.applied_lrs == pytest.approx([(1 - 0.9) * e for e in switch.sgd_lr_estimates])
    assert len(switch.applied_lrs) == 7 and len(set(switch.applied_lrs)) == 7
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["momentum"] == 0.9
    assert [group["lr"] for group in optimizer.param_groups] == switch.applied_lrs
    assert seen.steps[2 * STEPS_PER_EPOCH][1] == switch.applied_lrs[0]
    assert float(trainer.callback_metrics["optimizer/switched"]) == 1.0


def test_switches_after_patience_validations_without_improvement():
    # best 0.6 at epoch 1; epochs 2 and 3 do not beat it; patience 1 → switch after epoch 3's validation
    switch, seen = OptimizerSwitch(monitor="val/score", mode="max", patience=1, sgd_lr=0.02), Optimizers()
    fit([Scores([0.5, 0.6, 0.6, 0.55, 0.9, 0.9]), switch, seen], epochs=6)
    assert switch.switch_step == 4 * STEPS_PER_EPOCH
    assert seen.steps[4 * STEPS_PER_EPOCH - 1][0] == "Adam"
    assert seen.steps[4 * STEPS_PER_EPOCH] == ("SGD", 0.02)


@pytest.mark.parametrize("stop_after", [1, 3], ids=["resume-before-switch", "resume-after-switch"])
def test_resume_matches_the_uninterrupted_run(tmp_path, stop_after):
    def switch():
        return OptimizerSwitch(monitor=None, switch_epoch=2)

    full, full_seen = switch(), Optimizers()
    _, full_model = fit([full, full_seen, RNGState()], epochs=4)
    first = switch()
    fit([first, RNGState(), ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)], epochs=stop_after)
    assert first.switched == (stop_after > 2)
    resumed, seen = switch(), Optimizers()
    trainer, model = fit([resumed, seen, RNGState(), ModelCheckpoint(dirpath=tmp_path / "b", save_top_k=0)],
                         epochs=4, ckpt_path=str(tmp_path / "last.ckpt"))
    assert isinstance(trainer.optimizers[0], torch.optim.SGD)
    state, expected = resumed.state_dict(), full.state_dict()
    for key in ("applied_lrs", "estimates"):
        assert state.pop(key) == pytest.approx(expected.pop(key), rel=1e-6)
    assert state == expected
    remaining = {s: v for s, v in full_seen.steps.items() if s >= stop_after * STEPS_PER_EPOCH}
    assert [v[0] for v in seen.steps.values()] == [v[0] for v in remaining.values()]
    assert [v[1] for v in seen.steps.values()] == pytest.approx([v[1] for v in remaining.values()], rel=1e-6)
    for a, b in zip(model.parameters(), full_model.parameters()):
        torch.testing.assert_close(a, b)  # SGD's momentum buffers came back from the checkpoint too


def test_state_dict_is_plain_and_loads_with_defaults():
    switch = OptimizerSwitch()
    assert switch.state_dict() == {"switched": False, "switch_step": None, "applied_lrs": [], "best": None,
                                   "wait": 0, "estimates": [], "estimate_steps": []}
    switch.load_state_dict({})
    assert not switch.switched and switch.sgd_lr_estimate is None


VALID = "ASGD, Adadelta, Adafactor, Adagrad, Adam, AdamW, Adamax, LBFGS, Muon, NAdam, RAdam, RMSprop, Rprop, SGD, SparseAdam"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "Sgd"}, f"switch target 'Sgd' is not an optimizer class; choose one of {VALID}"),
        ({"target": "torch.nn.Linear"}, f"switch target 'torch.nn.Linear' is not an optimizer class; choose one of {VALID}"),
        ({"mode": "up"}, "mode must be one of min, max (or None: from the metric name), got 'up'."),
        ({"monitor": None}, "give a monitor (switch on a plateau), a switch_epoch, or both."),
        ({"momentum": 1.0}, "momentum must be in [0, 1), got 1.0."),
        ({"sgd_lr": 0.0}, "sgd_lr must be > 0 or None (the SWATS estimate), got 0.0."),
        ({"patience": -1}, "patience must be an integer >= 0, got -1."),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        OptimizerSwitch(**kwargs)
    assert str(error.value).startswith(message)


DDP_SCRIPT = r'''
import hashlib, json, os, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import torch
from lightning.pytorch import Callback, Trainer
from callbacks.clipping import AutoClip
from callbacks.early_stopping import EarlyStopping
from callbacks.optimizer_switch import OptimizerSwitch
from callbacks.weight_init import WeightInit
from datamodules import TextClassificationDataModule
from tests.helpers_callbacks import TinyLSTM

class Report(Callback):
    def __init__(self):
        self.val = []
    def on_validation_end(self, trainer, pl_module):
        self.val.append(float(trainer.callback_metrics["val/loss"]))
    def on_fit_end(self, trainer, pl_module):
        pass

if __name__ == "__main__":
    torch.set_num_threads(1)
    rank = int(os.environ.get("LOCAL_RANK", 0))
    torch.manual_seed(rank + 1)  # different initial draws per rank: WeightInit must broadcast
    data = TextClassificationDataModule(limit=300, batch_size=16)
    model = TinyLSTM(data.vocab_size, data.num_classes, lr=0.02)
    init, clip = WeightInit(), AutoClip(percentile=20)
    switch = OptimizerSwitch(monitor="val/loss", patience=0, momentum=0.9)
    stop, report = EarlyStopping(monitor="val/loss", patience=10), Report()
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=5,
                      callbacks=[init, clip, switch, stop, report], logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data)
    weights = b"".join(p.detach().numpy().tobytes() for p in model.parameters())
    Path({out!r}, f"rank{{trainer.global_rank}}.json").write_text(json.dumps({{
        "val": report.val, "history": clip.history, "switch_step": switch.switch_step,
        "optimizer": type(trainer.optimizers[0]).__name__, "best_epoch": stop.best_epoch,
        "weights": hashlib.sha1(weights).hexdigest(), "init_rows": len(init.applied),
    }}))
'''


@pytest.mark.slow
def test_ddp_ranks_agree_on_every_stateful_stability_callback(tmp_path, repo_root):
    import json
    import subprocess
    import sys

    script = tmp_path / "ddp_stability.py"
    script.write_text(DDP_SCRIPT.format(root=str(repo_root), out=str(tmp_path)), encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert zero["val"] != one["val"]  # each rank validated on its own shard: the decisions had to be shared
    assert zero["init_rows"] == one["init_rows"] > 0
    assert zero["history"] == one["history"] and len(zero["history"]) > 0
    assert zero["switch_step"] == one["switch_step"] is not None and zero["optimizer"] == one["optimizer"] == "SGD"
    assert zero["best_epoch"] == one["best_epoch"] is not None
    assert zero["weights"] == one["weights"]  # the same best weights restored on both ranks
    assert not math.isnan(zero["history"][0])
