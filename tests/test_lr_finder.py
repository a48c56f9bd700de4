"""LR range test (T01): curve analysis on synthetic curves, and the callback on real training."""

from __future__ import annotations

import copy
import glob
import itertools
import logging
import math
import os
import random
import signal

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from callbacks import LRFinder, assess_curve, read_offline_run, suggest_lr
from callbacks.lr_curve import divergence_index, exponential_sweep, linear_sweep, smooth
from datamodules import TextClassificationDataModule
from tests.helpers_callbacks import Preempt, Preempted, Recorder


# ---------------------------------------------------------------------------- pure functions
def test_sweeps_hit_both_ends():
    lrs = exponential_sweep(1e-6, 1.0, 100)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0) and len(lrs) == 100
    assert lrs[1] / lrs[0] == pytest.approx(lrs[-1] / lrs[-2])
    lin = linear_sweep(0.1, 1.0, 10)
    assert lin[0] == pytest.approx(0.1) and lin[-1] == pytest.approx(1.0) and lin[1] - lin[0] == pytest.approx(0.1)


def test_smoothing_is_bias_corrected():
    # Lightning 2.6.6 divides by the wrong power: its first smoothed value is about half the loss
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    assert smooth([1.0, 3.0], beta=0.5) == pytest.approx([1.0, (0.25 * 1 + 0.5 * 3) / 0.75])


def test_divergence_index():
    assert divergence_index([1.0] * 10 + [3.9, 4.1]) == 11
    assert divergence_index([1.0, 0.5, 0.4, 0.3, 0.2, 0.3, 0.81]) == 6
    assert divergence_index([1.0, float("nan")]) == 1
    assert divergence_index([1.0, 0.9, 0.8]) is None


def synthetic(center: float, noise: float, seed: int, width: float = 0.35) -> tuple[list[float], list[float], float, float]:
    """Loss falling as a logistic in log10(lr) (steepest at ``center``), bottoming out a decade
    later, then diverging; multiplicative noise. Returns lrs, losses, the steepest LR and the LR of
    the minimum of the noise-free curve."""
    rng = random.Random(seed)
    lrs = exponential_sweep(1e-7, 10.0, 100)

    def clean(lr: float) -> float:
        x = math.log10(lr)
        rise = math.exp(3 * (x - center - 1.2)) - 1 if x > center + 1.2 else 0.0
        return 2.3 - 2.0 / (1 + math.exp(-(x - center) / width)) + rise

    losses = [clean(lr) * (1 + rng.gauss(0, noise)) for lr in lrs]
    lowest = min(lrs, key=clean)
    return lrs, losses, 10**center, lowest


@pytest.mark.parametrize("center", [-5.0, -3.0, -1.5])
@pytest.mark.parametrize("noise", [0.0, 0.02, 0.05, 0.10])
@pytest.mark.parametrize("seed", range(4))
def test_default_suggestion_lands_between_a_decade_below_the_steepest_point_and_the_minimum(center, noise, seed):
    lrs, losses, steepest, lowest = synthetic(center, noise, seed)
    suggestion = suggest_lr(lrs, losses)
    assert steepest / 10 <= suggestion <= lowest, (suggestion, steepest, lowest)


@pytest.mark.parametrize("center", [-5.0, -3.0, -1.5])
def test_each_method_on_a_clean_curve(center):
    lrs, losses, steepest, lowest = synthetic(center, 0.0, 0)
    assert suggest_lr(lrs, losses, "steep") == pytest.approx(steepest, rel=0.25)
    # the minimum of a smoothed curve sits a little before the true one when the rise is steep
    assert lowest / 20 <= suggest_lr(lrs, losses, "min10") <= lowest / 10 * 1.25
    # fastai's valley: two thirds down the longest decreasing run, which on a noise-free curve
    # starts at the first point, so it can sit far left; it never passes the minimum
    assert lrs[0] < suggest_lr(lrs, losses, "valley") <= lowest


def test_suggestion_errors():
    lrs, losses, _, _ = synthetic(-3.0, 0.0, 0)
    with pytest.raises(ValueError, match="unknown method 'best'; choose one of robust, steep, valley, min10"):
        suggest_lr(lrs, losses, "best")
    with pytest.raises(ValueError, match="only 5 usable points before the loss diverged; need at least 10"):
        suggest_lr(lrs[:5], losses[:5])
    with pytest.raises(ValueError, match="differ in length"):
        suggest_lr(lrs, losses[:-1])
    with pytest.raises(ValueError, match="only 3 usable points"):
        suggest_lr(lrs[:20], losses[:3] + [float("nan")] * 17)


def test_confidence_flags():
    lrs, losses, _, _ = synthetic(-3.0, 0.02, 0)
    assert assess_curve(lrs, losses).confident
    flat = [0.69 + 0.001 * math.sin(i) for i in range(100)]
    check = assess_curve(lrs, flat)
    assert not check.confident and check.reason.startswith("flat") and check.reason.endswith("raise max_lr")
    flat_then_nan = flat[:80] + [float("nan")] * 20  # flat, then non-finite at once: nothing to read
    check = assess_curve(lrs, flat_then_nan)
    assert not check.usable and check.reason.endswith("diverged without rising first: raise num_steps")
    check = assess_curve(lrs[:15], losses[:15])
    assert not check.confident and check.reason.startswith("too short: 15 usable steps")
    _, noisy, _, _ = synthetic(-3.0, 0.9, 0)
    check = assess_curve(lrs, [abs(v) for v in noisy])
    assert not check.confident and check.reason.startswith("no clear descent: the loss fell")
    assert "within its noise, then rose from lr=" in check.reason
    assert check.usable  # noise does not empty the reading; a flat curve that never rises and shortness do
    assert not assess_curve(lrs, flat).usable and not assess_curve(lrs[:15], losses[:15]).usable


@pytest.mark.parametrize("rise_at", [-2.0, -1.0, 0.0])
@pytest.mark.parametrize("noise", [0.01, 0.03])
@pytest.mark.parametrize("seed", range(4))
def test_a_slow_starter_is_read_a_decade_below_where_its_flat_loss_starts_to_rise(rise_at, noise, seed):
    """A model that cannot lower its loss within the sweep (random-init LSTM on MR): flat at ln 2, then
    rising from ``10**rise_at``. The robust reading sits a decade below the rise; the minimum is noise."""
    rng = random.Random(seed)
    lrs = exponential_sweep(1e-7, 10.0, 100)
    losses = [(0.693 + max(0.0, math.log10(lr) - rise_at) ** 2) * (1 + rng.gauss(0, noise)) for lr in lrs]
    check = assess_curve(lrs, losses)
    assert check.usable and not check.confident and check.reason.startswith(("flat", "no clear descent"))
    assert "then rose from lr=" in check.reason
    assert 10 ** (rise_at - 1.5) <= suggest_lr(lrs, losses) <= 10 ** (rise_at - 0.5)


# ---------------------------------------------------------------------------- the callback
@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # without a logger, plots go to the trainer's default_root_dir (the cwd)


class Snapshot(Callback):
    """Records weights, optimizer state, LRs and RNG state at fit start; placed before and after the finder."""

    def on_fit_start(self, trainer, pl_module):
        self.weights = copy.deepcopy(pl_module.state_dict())
        self.rng = torch.get_rng_state()
        self.optimizer_state = copy.deepcopy(trainer.optimizers[0].state_dict()["state"])
        self.lrs = [group["lr"] for group in trainer.optimizers[0].param_groups]


def run(tiny_model_class, finder, *, epochs=1, seed=0, optimizer="adam", callbacks=(), after=(), ckpt_path=None,
        logger=False, model=None, batch_size=32, **trainer_kwargs):
    torch.manual_seed(seed)
    data = TextClassificationDataModule(limit=300, batch_size=batch_size)
    model = model or tiny_model_class(data.vocab_size, data.num_classes, lr=0.01, optimizer=optimizer)
    trainer = Trainer(
        max_epochs=epochs, callbacks=[*callbacks, finder, *after], logger=logger, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        num_sanity_val_steps=0, **trainer_kwargs,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer, model


def test_finder_restores_the_model_exactly_and_applies_the_suggestion(tiny_model_class):
    before, after, finder = Snapshot(), Snapshot(), LRFinder(min_lr=1e-5, max_lr=10.0)
    trainer, model = run(tiny_model_class, finder, callbacks=[before], after=[after], max_steps=1)
    assert finder.steps_run == 100 and len(finder.losses) == 100
    assert finder.confident, finder.reason
    for name, tensor in before.weights.items():
        assert torch.equal(tensor, after.weights[name]), name
    assert after.optimizer_state == before.optimizer_state == {}  # Adam's moments from the sweep are gone
    assert torch.equal(before.rng, after.rng)
    assert finder.suggestion == pytest.approx(suggest_lr(finder.lrs, finder.losses))
    assert before.lrs == [0.01]
    assert model.lr == finder.suggestion and after.lrs == [finder.suggestion]
    assert 1e-3 < finder.suggestion < 1.0  # this model memorises 200 sentences between ~1e-2 and ~1e-1


def test_param_group_ratios_are_kept(tiny_model_class):
    class Grouped(tiny_model_class):
        def configure_optimizers(self):
            return torch.optim.Adam(
                [{"params": self.embedding.parameters(), "lr": self.lr}, {"params": self.head.parameters(), "lr": self.lr / 10}]
            )

    data = TextClassificationDataModule(limit=300, batch_size=32)
    after, finder = Snapshot(), LRFinder(min_lr=1e-5, max_lr=10.0)
    run(tiny_model_class, finder, after=[after], max_steps=1, model=Grouped(data.vocab_size, data.num_classes, lr=0.01))
    assert after.lrs == pytest.approx([finder.suggestion, finder.suggestion / 10])


def test_immediate_divergence_keeps_the_configured_lr_with_a_warning(tiny_model_class, notices):
    finder = LRFinder(min_lr=1e4, max_lr=1e8, num_steps=20)
    trainer, model = run(tiny_model_class, finder, optimizer="sgd", max_steps=1)
    assert len(notices(r"^LRFinder: kept lr 0.01: the loss diverged too early to read \(.*reading of \d+ steps\)\. Lower min_lr")) == 1
    assert finder.suggestion is None and not finder.confident
    assert model.lr == 0.01 and trainer.optimizers[0].param_groups[0]["lr"] == 0.01


def test_runs_again_at_the_given_epochs_and_on_validation_loss(tiny_model_class):
    """val_batches=2: each point of a sweep's curve is the mean loss on the first two validation batches
    under the weights its training step left (evaluated again here), not that step's training loss."""

    class Recording(tiny_model_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.stepped: list[tuple[int, float, dict]] = []  # (epoch, LR, weights after) per optimizer step
            self.train_losses: list[tuple[int, float]] = []  # (epoch, loss) per training-mode training_step

        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            if torch.is_grad_enabled():  # the finder evaluates held-out batches through training_step, without
                self.train_losses.append((self.trainer.current_epoch, float(loss.detach())))
            return loss

        def optimizer_step(self, *args, **kwargs):
            super().optimizer_step(*args, **kwargs)
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            self.stepped.append((self.trainer.current_epoch, lr, copy.deepcopy(self.state_dict())))

    class Curves(Callback):
        """The finder's curve as each epoch starts (after the finder, which sweeps first)."""

        def __init__(self) -> None:
            self.curves: dict[int, tuple[list[float], list[float]]] = {}

        def on_train_epoch_start(self, trainer, pl_module):
            self.curves[trainer.current_epoch] = (list(finder.lrs), list(finder.losses))

    data = TextClassificationDataModule(limit=300, batch_size=8)
    data.setup("fit")
    assert len(data.val_dataloader()) == 3  # the sweep takes the first two of three
    held_out = list(itertools.islice(data.val_dataloader(), 2))
    probe = tiny_model_class(data.vocab_size, data.num_classes)

    def validation_loss(weights: dict) -> float:
        probe.load_state_dict(weights)
        with torch.no_grad():
            losses = [torch.nn.functional.cross_entropy(probe(b["tokens"]), b["labels"]) for b in held_out]
        return float(sum(losses) / len(losses))

    torch.manual_seed(0)
    model = Recording(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam")
    finder, curves = LRFinder(min_lr=1e-5, max_lr=10.0, num_steps=30, epochs=[1], val_batches=2), Curves()
    run(tiny_model_class, finder, epochs=2, model=model, after=[curves], batch_size=8)
    assert finder.done == ["fit", "epoch 1"]
    assert finder.steps_run == len(curves.curves[1][0])
    plan = exponential_sweep(1e-5, 10.0, 30)
    for epoch in (0, 1):  # the sweep at fit start, then the one at the start of epoch 1
        lrs, losses = curves.curves[epoch]
        assert 10 <= len(lrs) <= 30 and lrs == pytest.approx(plan[: len(lrs)])
        sweep = [(lr, weights) for e, lr, weights in model.stepped if e == epoch][: len(lrs)]  # the sweep comes first
        assert [lr for lr, _ in sweep] == pytest.approx(lrs)  # the LR each point's step was taken with
        assert losses == pytest.approx([validation_loss(weights) for _, weights in sweep], rel=1e-5)
        training = [loss for e, loss in model.train_losses if e == epoch][: len(lrs)]
        assert max(abs(a - b) for a, b in zip(losses, training)) > 1e-3  # not the training-loss curve


def test_skipped_on_resume(tmp_path, tiny_model_class):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    first = LRFinder(min_lr=1e-5, max_lr=10.0)
    run(tiny_model_class, first, callbacks=[checkpoint])
    resumed = LRFinder(min_lr=1e-5, max_lr=10.0)
    trainer, model = run(tiny_model_class, resumed, epochs=2, ckpt_path=str(tmp_path / "last.ckpt"),
                         callbacks=[ModelCheckpoint(dirpath=tmp_path / "again", save_top_k=0)])
    assert resumed.steps_run == 0  # no new sweep
    assert resumed.suggestion == first.suggestion and resumed.done == ["fit"]
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(first.suggestion)


def test_curve_plot_and_suggestion_reach_wandb(offline_wandb, tiny_model_class):
    logger = WandbLogger(project="lr-finder-test", save_dir=str(offline_wandb))
    finder = LRFinder(min_lr=1e-5, max_lr=10.0, check="always")
    trainer, _ = run(tiny_model_class, finder, max_steps=2, logger=logger)
    png = offline_wandb / "lr-finder-test" / logger.version / "lr_finder.png"
    assert png.is_file() and png.stat().st_size > 10_000
    logger.experiment.finish()
    record = read_offline_run(glob.glob(str(offline_wandb / "wandb" / "offline-run-*"))[0])
    assert record.summary["lr_finder/suggestion"] == pytest.approx(finder.curve_suggestion)  # the reading
    assert record.summary["lr_finder/applied_lr"] == pytest.approx(finder.suggestion)  # after any self-check
    assert record.summary["lr_finder/confident"] is True and record.summary["lr_finder/steps"] == 100
    assert record.summary["lr_finder/checked"] is True and record.summary["lr_finder/check_steps"] == finder.check_steps_run > 0
    assert record.summary["lr_finder/check_lrs"] == pytest.approx(list(finder.checked))
    assert record.summary["lr_finder/check_losses"] == pytest.approx(list(finder.checked.values()))
    assert any("lr_finder/curve_table" in row or "lr_finder/curve" in row for row in record.history)
    assert any("lr_finder/plot" in row for row in record.history)


def test_the_sweep_runs_under_the_trainers_mixed_precision_and_restores_exactly(tiny_model_class):
    """bf16-mixed: every sweep step's forward runs under autocast (Lightning's precision plugin), as in training."""

    class Recording(tiny_model_class):
        def training_step(self, batch, batch_idx):
            logits = self(batch["tokens"])
            self.seen.append((torch.is_autocast_enabled(self.device.type), logits.dtype))
            return torch.nn.functional.cross_entropy(logits, batch["labels"])

    data = TextClassificationDataModule(limit=300, batch_size=32)
    torch.manual_seed(0)
    model = Recording(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam")
    model.seen = []
    before, after, finder = Snapshot(), Snapshot(), LRFinder(min_lr=1e-4, max_lr=1.0, num_steps=20, check="always", check_steps=2)
    run(tiny_model_class, finder, callbacks=[before], after=[after], max_steps=1, model=model, precision="bf16-mixed",
        accelerator="cpu")
    assert finder.steps_run == 20 and all(math.isfinite(loss) for loss in finder.losses)
    # 20 sweep steps, the self-check's 3 x 2 steps and its validation batches, then the one training step
    assert len(model.seen) > 20 + 6 + 1 and set(model.seen) == {(True, torch.bfloat16)}
    assert finder.check_steps_run == 6 and len(finder.checked) == 3
    for name, tensor in before.weights.items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, after.weights[name]), name
    assert after.optimizer_state == before.optimizer_state == {} and torch.equal(before.rng, after.rng)
    assert after.lrs == [finder.suggestion]


def test_the_sweep_steps_through_the_grad_scaler_and_restores_its_scale(tiny_model_class):
    """16-mixed: GradScaler scales, unscales and updates in the sweep; training starts from the scale it had."""
    from lightning.pytorch.plugins import MixedPrecision

    class Scales(tiny_model_class):
        def on_before_optimizer_step(self, optimizer):
            self.scales.append(self.trainer.precision_plugin.scaler.get_scale())

    data = TextClassificationDataModule(limit=300, batch_size=32)
    torch.manual_seed(0)
    model = Scales(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam")
    model.scales = []
    # the scale doubles after every step without an overflow, and halves on one
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)
    before, after, finder = Snapshot(), Snapshot(), LRFinder(min_lr=1e-4, max_lr=1.0, num_steps=20)
    run(tiny_model_class, finder, callbacks=[before], after=[after], max_steps=1, model=model,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)], accelerator="cpu")
    assert finder.steps_run == 20
    assert len(model.scales) == 20 + 1 and model.scales[:3] == [2.0**10, 2.0**11, 2.0**12]  # updated in the sweep
    assert model.scales[-1] == 2.0**10  # the training step: the scale restored
    for name, tensor in before.weights.items():
        assert torch.equal(tensor, after.weights[name]), name


def test_a_sweep_step_is_one_optimizer_step_over_accumulate_grad_batches_batches(tiny_model_class):
    class Counting(tiny_model_class):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.batch_losses.append(float(loss.detach()))
            return loss

        def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
            self.zero_grads += 1
            super().optimizer_zero_grad(epoch, batch_idx, optimizer)

    data = TextClassificationDataModule(limit=300, batch_size=32)
    torch.manual_seed(0)
    model = Counting(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam")
    model.batch_losses, model.zero_grads = [], 0
    before, after, finder = Snapshot(), Snapshot(), LRFinder(min_lr=1e-4, max_lr=1.0, num_steps=20)
    trainer, _ = run(tiny_model_class, finder, callbacks=[before], after=[after], max_steps=1, model=model,
                     accumulate_grad_batches=2)
    assert finder.steps_run == 20 and trainer.global_step == 1
    # 20 sweep steps and 1 training step, each of 2 batches, one zero_grad and one optimizer step
    assert len(model.batch_losses) == 2 * (20 + 1)
    assert len(model.preclip_norms) == model.zero_grads == 20 + 1
    # a step's loss is the mean of its batches' losses, as Lightning averages an accumulated loss
    means = [(a + b) / 2 for a, b in zip(model.batch_losses[0:40:2], model.batch_losses[1:40:2])]
    assert finder.losses == pytest.approx(means, rel=1e-6)
    for name, tensor in before.weights.items():
        assert torch.equal(tensor, after.weights[name]), name


def probed(model_class, record: str):
    """A seeded ``model_class`` on 300 MR sentences with an empty list ``record``, and a 20-step finder."""
    data = TextClassificationDataModule(limit=300, batch_size=32)
    torch.manual_seed(0)
    model = model_class(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam")
    setattr(model, record, [])
    return model, LRFinder(min_lr=1e-4, max_lr=1.0, num_steps=20)


@pytest.mark.filterwarnings("ignore:You requested to overfit but enabled train dataloader shuffling")
def test_the_sweep_draws_its_batches_as_training_does(tiny_model_class):
    """overfit_batches=2: the sweep cycles over the same two fixed batches that training uses."""

    class Batches(tiny_model_class):
        def training_step(self, batch, batch_idx):
            self.seen.append(tuple(batch["tokens"].flatten().tolist()))
            return super().training_step(batch, batch_idx)

    model, finder = probed(Batches, "seen")
    run(tiny_model_class, finder, max_steps=2, model=model, overfit_batches=2)
    assert finder.steps_run == 20 and len(model.seen) == 20 + 2
    assert len(set(model.seen)) == 2 and set(model.seen[:20]) == set(model.seen[20:])


def test_the_trainers_gradient_clipping_applies_in_the_sweep(tiny_model_class):
    """gradient_clip_val runs through the module's configure_gradient_clipping, as in Lightning's optimization."""

    class Clipped(tiny_model_class):
        def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
            grads = [p.grad.flatten() for p in self.parameters() if p.grad is not None]
            self.clipped_norms.append(float(torch.linalg.vector_norm(torch.cat(grads))))

    model, finder = probed(Clipped, "clipped_norms")
    run(tiny_model_class, finder, max_steps=1, model=model, gradient_clip_val=0.05)
    assert finder.steps_run == 20
    assert len(model.clipped_norms) == len(model.preclip_norms) == 20 + 1
    assert any(norm > 0.05 for norm in model.preclip_norms[:20])  # the clipping had work to do in the sweep
    for pre, post in zip(model.preclip_norms, model.clipped_norms):
        assert post == pytest.approx(min(pre, 0.05), rel=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_lr": 1.0, "max_lr": 0.1}, "need 0 < min_lr < max_lr"),
        ({"min_lr": 0.0}, "need 0 < min_lr < max_lr"),
        ({"method": "fastest"}, "unknown method 'fastest'; choose one of robust, steep, valley, min10"),
        ({"mode": "cosine"}, "unknown mode 'cosine'; choose one of exponential, linear"),
        ({"num_steps": 5}, "num_steps=5 is too few for a usable curve; use at least 20"),
        ({"beta": 1.0}, "beta must be in"),
        ({"divergence": 1.0}, "divergence must be > 1"),
        ({"epochs": [-1]}, "epochs must be >= 0"),
        ({"unreliable": "ignore"}, "unreliable must be .keep. or .apply."),
        ({"check": "sometimes"}, "check must be one of auto, always, never, got 'sometimes'"),
        ({"check_span": 0.0}, r"check_span must be in \(0, 2\] decades"),
        ({"check_span": 3.0}, r"check_span must be in \(0, 2\] decades"),
        ({"check_steps": 0}, r"check_steps must be >= 1 or null \(one epoch, 40 to 200 steps\), got 0"),
        ({"check_val_batches": 0}, "check_val_batches must be >= 1, got 0"),
    ],
)
def test_bad_arguments_fail_in_init(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LRFinder(**kwargs)


DDP_SCRIPT = '''
import json, os, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import torch
from lightning.pytorch import Callback, Trainer
from callbacks import LRFinder
from datamodules import TextClassificationDataModule
from tests.conftest import TinyTextModel

class Recording(TinyTextModel):
    """Per training step (sweep and training): a checksum of the weights and whether DDP syncs its gradients."""

    def training_step(self, batch, batch_idx):
        checksum = float(sum(p.detach().double().sum() for p in self.parameters()))
        self.records.append([checksum, self.trainer.model.require_backward_grad_sync])
        return super().training_step(batch, batch_idx)


class Report(Callback):
    def on_train_start(self, trainer, pl_module):
        Path({out!r}, f"rank{{trainer.global_rank}}.json").write_text(json.dumps({{
            "lr": trainer.optimizers[0].param_groups[0]["lr"], "model_lr": pl_module.lr,
            "suggestion": finder.suggestion, "steps": finder.steps_run, "first_loss": finder.losses[0],
            "records": pl_module.records, "checked": list(finder.checked.items()), "check_steps": finder.check_steps_run,
        }}))

if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(int(os.environ.get("LOCAL_RANK", 0)) + 1)  # each rank its own seed (and its own data shard)
    data = TextClassificationDataModule(limit=300, batch_size=32)
    model = Recording(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam")
    model.records = []
    finder = LRFinder(min_lr=1e-5, max_lr=10.0, num_steps=60, check="always", check_steps=3)
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=2, callbacks=[finder, Report()],
                      accumulate_grad_batches=2,
                      logger=False, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data)
'''


@pytest.mark.slow
def test_ddp_ranks_train_with_rank_zeros_suggestion(tmp_path, repo_root):
    import json
    import subprocess
    import sys

    script = tmp_path / "ddp_finder.py"
    script.write_text(DDP_SCRIPT.format(root=str(repo_root), out=str(tmp_path)), encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["first_loss"] != ranks[1]["first_loss"]  # the ranks really swept different batches
    assert ranks[0]["steps"] > 0 and ranks[1]["steps"] > 0
    assert ranks[0]["suggestion"] == ranks[1]["suggestion"]  # rank zero decided for both
    # the self-check's validation losses are averaged over the ranks: both rank the candidates alike
    assert len(ranks[0]["checked"]) == 3 and ranks[0]["checked"] == ranks[1]["checked"]
    assert ranks[0]["check_steps"] == ranks[1]["check_steps"] == 9
    assert ranks[0]["lr"] == ranks[1]["lr"] == ranks[0]["suggestion"] == ranks[1]["model_lr"]
    # the sweep syncs the gradients as training does: the same weights on both ranks at every step, and
    # no all-reduce on the first of each step's two accumulated batches
    records = [rank["records"] for rank in ranks]
    assert len(records[0]) >= 2 * (ranks[0]["steps"] + 9) and records[0] == records[1]
    sweep = records[0][:2 * ranks[0]["steps"]]
    assert [sync for _, sync in sweep] == [False, True] * ranks[0]["steps"]


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
def test_finder_then_cyclic_schedule_resume_mid_epoch_on_the_same_trajectory(tmp_path, tiny_model_class):
    """T01 + T02: the finder sets the cycle's bounds once; a run stopped mid-epoch and resumed
    follows the uninterrupted LR trajectory step for step, and does not sweep again."""
    from callbacks import CyclicLR

    def tricks():
        return LRFinder(min_lr=1e-5, max_lr=10.0, num_steps=40), CyclicLR("triangular2", step_size_epochs=1.5)

    finder, cyclic = tricks()
    full = Recorder()
    run(tiny_model_class, finder, after=[cyclic, full], epochs=3)
    assert cyclic.schedule.max_lr == finder.suggestion

    finder, cyclic = tricks()
    first, path = Recorder(), tmp_path / "preempted.ckpt"
    with pytest.raises(Preempted):
        run(tiny_model_class, finder, after=[cyclic, first, Preempt(10, path)], epochs=3)
    finder, cyclic = tricks()
    second = Recorder()
    run(tiny_model_class, finder, after=[cyclic, second], epochs=3, ckpt_path=str(path))
    assert finder.steps_run == 0  # no new sweep on resume
    assert sorted(first.lrs) == list(range(10)) and min(second.lrs) == 10
    assert {**first.lrs, **second.lrs} == full.lrs


def test_a_flat_curve_keeps_the_configured_lr_unless_told_otherwise(tiny_model_class, notices):
    # SGD at LRs far too small to learn anything: the curve is flat
    finder = LRFinder(min_lr=1e-8, max_lr=1e-6)
    trainer, model = run(tiny_model_class, finder, optimizer="sgd", max_steps=1)
    assert notices(r"^LRFinder: kept lr 0.01: nothing to read in the curve \(flat: .*; \w+ reading of \d+ steps\); its "
                   r"suggestion .* is not used", level=logging.WARNING)
    assert not finder.confident and finder.curve_suggestion is not None and finder.suggestion is None
    assert model.lr == 0.01 and trainer.optimizers[0].param_groups[0]["lr"] == 0.01

    finder = LRFinder(min_lr=1e-8, max_lr=1e-6, unreliable="apply", check="auto")  # not confident: checked
    trainer, model = run(tiny_model_class, finder, optimizer="sgd", max_steps=1)
    assert notices(r"^LRFinder: lr \S+ applied \(\w+ reading of \d+ steps, not confident: flat.*; self-checked over 120 "
                   r"steps \(40 per LR\), validation loss .*; kept the reading\); curve: .*lr_finder.png\.$",
                   level=logging.INFO)
    # nothing learns at these LRs: the three candidates tie, and a tie keeps the reading
    assert len(finder.checked) == 3 and finder.check_steps_run == 120
    assert trainer.optimizers[0].param_groups[0]["lr"] == finder.suggestion == finder.curve_suggestion


class BatchLog(Callback):
    """What each training step of the self-check saw: the LR of group 0 and a checksum of the batch's tokens."""

    def __init__(self):
        self.steps = []

    def on_fit_start(self, trainer, pl_module):
        log, step = self.steps, pl_module.training_step

        def recording(batch, batch_idx):
            log.append((trainer.optimizers[0].param_groups[0]["lr"], int(batch["tokens"].sum())))
            return step(batch, batch_idx)

        pl_module.training_step = recording


def test_the_self_check_trains_each_candidate_on_the_same_batches_and_keeps_the_best(tiny_model_class, notices):
    """T01 self-check: half a decade either side of the reading, 5 steps each from the restored weights."""
    before, after, log = Snapshot(), Snapshot(), BatchLog()
    finder = LRFinder(min_lr=1e-5, max_lr=10.0, check="always", check_steps=5)
    trainer, model = run(tiny_model_class, finder, callbacks=[before, log], after=[after], max_steps=1)
    reading = finder.curve_suggestion
    assert list(finder.checked) == pytest.approx([reading / 10**0.5, reading, reading * 10**0.5])
    assert finder.check_steps_run == 15
    # after the sweep's steps, before training's one: per candidate 5 training steps, then its validation batches
    # (scored with training_step's loss)
    checks = log.steps[finder.steps_run:-1]
    size = len(checks) // 3
    runs = [checks[i * size:(i + 1) * size] for i in range(3)]
    assert size > 5 and [{lr for lr, _ in run} for run in runs] == [{lr} for lr in finder.checked]
    assert [batch for _, batch in runs[0]] == [batch for _, batch in runs[1]] == [batch for _, batch in runs[2]]
    best = min(finder.checked, key=finder.checked.get)
    assert finder.suggestion == (reading if finder.checked[reading] <= finder.checked[best] * 1.001 else best)
    assert model.lr == finder.suggestion and after.lrs == [finder.suggestion]
    for name, tensor in before.weights.items():  # neither the sweep nor the self-check left a trace
        assert torch.equal(tensor, after.weights[name]), name
    assert torch.equal(before.rng, after.rng) and after.optimizer_state == {}
    assert notices(r"^LRFinder: lr \S+ applied \(robust reading of 100 steps, confident; self-checked over 15 steps "
                   r"\(5 per LR\), validation loss \S+: [\d.]+, \S+: [\d.]+, \S+: [\d.]+; (kept the reading|moved from the "
                   r"reading \S+)\)", level=logging.INFO)
    assert finder.state_dict()["checked"] == [[lr, loss] for lr, loss in finder.checked.items()]
    resumed = LRFinder(min_lr=1e-5, max_lr=10.0)
    resumed.load_state_dict(finder.state_dict())
    assert resumed.checked == finder.checked and resumed.check_steps_run == 15


def test_a_confident_reading_is_not_checked_unless_asked(tiny_model_class):
    for check in ("auto", "never"):  # never: the default
        finder = LRFinder(min_lr=1e-5, max_lr=10.0, check=check)
        run(tiny_model_class, finder, max_steps=1)
        assert finder.confident and finder.checked == {} and finder.check_steps_run == 0
    assert LRFinder().check == "never"
    never = LRFinder(min_lr=1e-8, max_lr=1e-6, unreliable="apply", check="never")
    run(tiny_model_class, never, optimizer="sgd", max_steps=1)
    assert not never.confident and never.checked == {} and never.suggestion == never.curve_suggestion


def test_the_schedule_follows_the_finder_whatever_the_callback_order(tiny_model_class):
    """One-shot order at fit start: the LR finder, then the schedule, even when listed the other way."""
    from callbacks import CyclicLR

    cyclic, finder = CyclicLR("triangular"), LRFinder(min_lr=1e-5, max_lr=10.0, num_steps=40)
    trainer = Trainer(max_steps=2, callbacks=[cyclic, finder], logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0)
    data = TextClassificationDataModule(limit=300, batch_size=32)
    torch.manual_seed(0)
    trainer.fit(tiny_model_class(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam"), datamodule=data)
    assert finder.suggestion is not None and cyclic.schedule.max_lr == finder.suggestion


@pytest.mark.parametrize("where", [3, 50 + 2], ids=["the sweep's third step", "the self-check's second step"])
def test_sigterm_during_a_sweep_in_training_ends_the_run_at_once_with_the_weights_restored(tiny_model_class, where):
    """A sweep at a later epoch runs under Lightning's SIGTERM handler; one at fit start, under the CLI's."""
    class Preempted(tiny_model_class):
        def training_step(self, batch, batch_idx):
            self.calls += 1
            if self.calls == self.signal_at:
                os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler sets trainer.received_sigterm
            return super().training_step(batch, batch_idx)

    class AtEpochEnd(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            self.weights = {name: value.clone() for name, value in pl_module.state_dict().items()}
            self.calls = pl_module.calls

    data = TextClassificationDataModule(limit=300, batch_size=32)
    torch.manual_seed(0)
    model = Preempted(data.vocab_size, data.num_classes, lr=0.01, optimizer="adam")
    model.calls, model.signal_at = 0, 6 + where  # epoch 0 has 6 training batches; then the sweep's 50, the check's
    seen = AtEpochEnd()
    finder = LRFinder(min_lr=1e-4, max_lr=1.0, num_steps=50, before_fit=False, epochs=[1], divergence=1e9,
                      check="always", check_steps=5)  # the whole sweep (no divergence stop), then 3 x 5 self-check steps
    with pytest.raises(SIGTERMException):
        run(tiny_model_class, finder, epochs=2, model=model, callbacks=[seen])
    assert seen.calls == 6 and model.calls == 6 + where, "stopped in the step it was signalled in, no training step followed"
    for name, value in model.state_dict().items():
        assert torch.equal(value, seen.weights[name]), name


def test_the_plot_shows_the_self_check_and_the_applied_lr(tmp_path):
    from callbacks.lr_curve import plot_curve

    lrs, losses, _, _ = synthetic(-3.0, 0.02, 0)
    reading = suggest_lr(lrs, losses)
    checked = {reading / 10**0.5: 0.41, reading: 0.38, reading * 10**0.5: math.inf}  # the largest diverged
    plain = plot_curve(lrs, losses, {"robust": reading}, tmp_path / "plain.png")
    drawn = plot_curve(lrs, losses, {"robust": reading}, tmp_path / "checked.png", checked=checked,
                       applied=reading / 10**0.5)
    assert drawn.is_file() and plain.is_file() and drawn.stat().st_size > plain.stat().st_size
