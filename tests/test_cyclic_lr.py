"""CyclicLR (T02, T03): the pure schedules against torch's own schedulers, and the callback in real fits on MR."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from callbacks.cyclic_lr import CyclicLR
from callbacks.schedules import (
    CyclicSchedule,
    cosine_restarts_lr,
    cyclic_momentum,
    exp_range_lr,
    one_cycle_lr,
    one_cycle_momentum,
    triangular2_lr,
    triangular_lr,
)
from datamodules import TextClassificationDataModule
from tests.helpers_callbacks import Preempt, Preempted, Recorder

STEPS_PER_EPOCH = 8  # MR with limit=400, batch_size=32: 252 training sentences



def _optimizer(kind: str = "sgd", lr: float = 0.1) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(2))]
    return torch.optim.Adam(params, lr=lr) if kind == "adam" else torch.optim.SGD(params, lr=lr, momentum=0.9)


def _walk(scheduler, optimizer, steps):
    """The (lr, momentum) torch sets for steps 0, 1, …: read before each optimizer step."""
    seen = []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        seen.append((group["lr"], group["betas"][0] if "betas" in group else group["momentum"]))
        optimizer.step()
        scheduler.step()
    return seen


# ------------------------------------------------------------------ pure functions vs torch


@pytest.mark.parametrize("step_size", [5, 7.5])
@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_policies_match_torch_cycliclr(mode, step_size):
    base, top, gamma = 0.01, 0.1, 0.97
    optimizer = _optimizer()
    scheduler = torch.optim.lr_scheduler.CyclicLR(
        optimizer, base, top, step_size_up=step_size, mode=mode, gamma=gamma, base_momentum=0.85, max_momentum=0.95
    )
    ours = {
        "triangular": lambda s: triangular_lr(s, base, top, step_size),
        "triangular2": lambda s: triangular2_lr(s, base, top, step_size),
        "exp_range": lambda s: exp_range_lr(s, base, top, step_size, gamma),
    }[mode]
    for step, (lr, momentum) in enumerate(_walk(scheduler, optimizer, int(8 * step_size))):  # four cycles
        assert ours(step) == pytest.approx(lr, abs=1e-9, rel=0)
        assert cyclic_momentum(step, 0.85, 0.95, step_size, mode, gamma) == pytest.approx(momentum, abs=1e-9, rel=0)


def test_triangle_shape():
    assert [triangular_lr(s, 1.0, 3.0, 2) for s in range(9)] == [1, 2, 3, 2, 1, 2, 3, 2, 1]
    assert [triangular2_lr(s, 1.0, 3.0, 2) for s in range(0, 13, 2)] == [1, 3, 1, 2, 1, 1.5, 1]
    assert [cyclic_momentum(s, 0.8, 0.9, 2) for s in (0, 2, 4)] == pytest.approx([0.9, 0.8, 0.9])


@pytest.mark.parametrize("optimizer_kind", ["sgd", "adam"])
@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize(("total", "pct_start"), [(100, 0.3), (37, 0.25)])
def test_one_cycle_matches_torch_onecyclelr(total, pct_start, anneal, optimizer_kind):
    optimizer = _optimizer(optimizer_kind)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 0.2, total_steps=total, pct_start=pct_start, anneal_strategy=anneal, div_factor=20.0,
        final_div_factor=100.0, base_momentum=0.85, max_momentum=0.95,
    )
    for step, (lr, momentum) in enumerate(_walk(scheduler, optimizer, total)):
        assert one_cycle_lr(step, total, 0.2, pct_start, 20.0, 100.0, anneal) == pytest.approx(lr, abs=1e-9, rel=0)
        assert one_cycle_momentum(step, total, 0.85, 0.95, pct_start, anneal) == pytest.approx(momentum, abs=1e-9)
    # past the end it holds the final LR instead of raising
    assert one_cycle_lr(total + 5, total, 0.2, pct_start, 20.0, 100.0, anneal) == pytest.approx(0.2 / 20 / 100)


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_cosine_restarts_match_torch_warm_restarts(t_mult):
    optimizer = _optimizer(lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=7, T_mult=t_mult, eta_min=0.001)
    for step, (lr, _) in enumerate(_walk(scheduler, optimizer, 7 * (1 + t_mult + t_mult**2) + 5)):  # 3+ periods
        assert cosine_restarts_lr(step, 0.1, 0.001, 7, t_mult) == pytest.approx(lr, abs=1e-9, rel=0)


def test_cosine_restarts_with_a_fractional_period_restarts_at_eta_max():
    lrs = [cosine_restarts_lr(s, 1.0, 0.0, 2.5, 2) for s in range(8)]
    assert lrs[0] == 1.0 and lrs[3] == pytest.approx((1 + math.cos(math.pi * 0.5 / 5)) / 2)
    assert min(lrs) >= 0.0


# ------------------------------------------------------------------ the callback in real fits


class FakeFinder(Callback):
    """What the LR finder leaves behind for CyclicLR: a float ``suggestion``, set at fit start."""

    def __init__(self, suggestion) -> None:
        self.suggestion = None
        self._value = suggestion

    def on_fit_start(self, trainer, pl_module) -> None:
        self.suggestion = self._value


def fit(model_class, callbacks, *, epochs=2, lr=0.05, optimizer=None, ckpt_path=None, seed=0, logger=False):
    torch.manual_seed(seed)
    data = TextClassificationDataModule(limit=400, batch_size=32)
    model = model_class(data.vocab_size, data.num_classes, lr=lr)
    if optimizer is not None:
        model.configure_optimizers = lambda: optimizer(model)
    trainer = Trainer(max_epochs=epochs, callbacks=list(callbacks), logger=logger, log_every_n_steps=1,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer, model


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("triangular", lambda s: triangular_lr(s, 0.025, 0.1, 4)),
        ("triangular2", lambda s: triangular2_lr(s, 0.025, 0.1, 4)),
        ("exp_range", lambda s: exp_range_lr(s, 0.025, 0.1, 4, 0.9)),
        ("one_cycle", lambda s: one_cycle_lr(s, 3 * STEPS_PER_EPOCH, 0.1)),
        ("cosine_restarts", lambda s: cosine_restarts_lr(s, 0.1, 0.0, 0.5 * STEPS_PER_EPOCH, 2)),
    ],
)
def test_optimizer_lr_follows_the_schedule_every_step(tiny_model_class, policy, expected):
    cyclic = CyclicLR(policy, max_lr=0.1, step_size_epochs=0.5, gamma=0.9, t_0=0.5)
    recorder = Recorder()
    trainer, _ = fit(tiny_model_class, [cyclic, recorder], epochs=3, lr=0.05,
                     optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=m.lr, momentum=0.9))
    assert trainer.global_step == 3 * STEPS_PER_EPOCH == len(recorder.lrs)
    for step, (lr,) in recorder.lrs.items():
        assert lr == pytest.approx(expected(step), abs=1e-12)
    if policy == "cosine_restarts":  # SGDR leaves the momentum alone
        assert set(recorder.momenta.values()) == {0.9}
        assert "momentum" not in trainer.callback_metrics
    else:
        for step, momentum in recorder.momenta.items():
            assert momentum == pytest.approx(cyclic.schedule.momentum(step), abs=1e-12)
        # inverse to the LR: lowest momentum where the LR peaks
        peak = max(recorder.lrs, key=lambda s: recorder.lrs[s][0])
        assert recorder.momenta[peak] == min(recorder.momenta.values())
        assert float(trainer.callback_metrics["momentum"]) == pytest.approx(recorder.momenta[max(recorder.momenta)])


def test_bounds_from_the_lr_finder_and_group_ratios_kept(tiny_model_class):
    def two_groups(model):
        return torch.optim.SGD([{"params": model.embedding.parameters(), "lr": 0.2},
                                {"params": model.head.parameters(), "lr": 0.1}], lr=0.2)

    cyclic, recorder = CyclicLR("triangular", step_size_epochs=0.5, cycle_momentum=False), Recorder()
    fit(tiny_model_class, [FakeFinder(0.05), cyclic, recorder], optimizer=two_groups)
    assert (cyclic.schedule.max_lr, cyclic.schedule.base_lr) == (0.05, 0.0125)
    assert "FakeFinder" in cyclic.schedule.source
    assert cyclic.schedule.ratios == [[1.0, 0.5]]
    for step, (embedding_lr, head_lr) in recorder.lrs.items():
        assert embedding_lr == pytest.approx(triangular_lr(step, 0.0125, 0.05, 4), abs=1e-12)
        assert head_lr == pytest.approx(embedding_lr / 2, abs=1e-12)
    assert max(lr for lr, _ in recorder.lrs.values()) == pytest.approx(0.05)
    assert set(recorder.momenta.values()) == {0.0}  # cycle_momentum=False leaves plain SGD alone


def test_without_finder_or_max_lr_the_optimizer_lr_is_the_max(tiny_model_class):
    cyclic = CyclicLR("triangular2", base_lr=0.01)
    fit(tiny_model_class, [FakeFinder(None), cyclic], epochs=1, lr=0.08)
    assert (cyclic.schedule.max_lr, cyclic.schedule.base_lr) == (0.08, 0.01)
    assert cyclic.schedule.source == "the optimizer's LR"


def test_a_max_below_the_given_base_fails_at_train_start(tiny_model_class):
    with pytest.raises(ValueError, match=r"max_lr=0.05 \(from the suggestion of FakeFinder\) must be > the low end 0.1"):
        fit(tiny_model_class, [FakeFinder(0.05), CyclicLR(base_lr=0.1)], epochs=1)


def test_adam_beta1_is_cycled_and_optimizers_without_momentum_are_left_alone(tiny_model_class):
    cyclic, recorder = CyclicLR("one_cycle", max_lr=0.01), Recorder()
    trainer, model = fit(tiny_model_class, [cyclic, recorder], epochs=1,
                         optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.99)))
    assert recorder.momenta[0] == pytest.approx(0.95) and min(recorder.momenta.values()) < 0.9
    assert trainer.optimizers[0].param_groups[0]["betas"][1] == 0.99

    cyclic, recorder = CyclicLR("triangular", max_lr=0.1), Recorder()
    trainer, _ = fit(tiny_model_class, [cyclic, recorder], epochs=1,
                     optimizer=lambda m: torch.optim.Adagrad(m.parameters(), lr=0.1))
    assert not recorder.momenta and "momentum" not in trainer.callback_metrics
    assert recorder.lrs[0] == [pytest.approx(0.025)]


@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before the epoch ended")
@pytest.mark.parametrize("policy", ["triangular2", "one_cycle"])
def test_resume_mid_epoch_and_mid_cycle_repeats_the_uninterrupted_trajectory(tmp_path, tiny_model_class, policy):
    momentum_sgd = lambda m: torch.optim.SGD(m.parameters(), lr=m.lr, momentum=0.9)  # noqa: E731
    make = lambda: CyclicLR(policy, step_size_epochs=1.25)  # noqa: E731  half cycle: 10 steps

    full = Recorder()
    fit(tiny_model_class, [FakeFinder(0.05), make(), full], epochs=3, optimizer=momentum_sgd)

    first, path = Recorder(), tmp_path / "preempted.ckpt"
    with pytest.raises(Preempted):  # 12 steps: epoch 1, batch 4; mid-way up the second cycle
        fit(tiny_model_class, [FakeFinder(0.05), make(), first, Preempt(12, path)], epochs=3, optimizer=momentum_sgd)
    # resumed without the finder, from a model whose own LR is different: the bounds come from the checkpoint
    resumed, second = make(), Recorder()
    fit(tiny_model_class, [resumed, second], epochs=3, lr=0.3, optimizer=momentum_sgd, ckpt_path=str(path))

    assert sorted(first.lrs) == list(range(12)) and sorted(second.lrs) == list(range(12, 24))
    assert {**first.lrs, **second.lrs} == full.lrs
    assert {**first.momenta, **second.momenta} == full.momenta
    assert resumed.schedule.max_lr == 0.05 and "FakeFinder" in resumed.schedule.source


def test_cycled_momentum_reaches_wandb(offline_wandb, tiny_model_class):
    import glob

    from lightning.pytorch.loggers import WandbLogger

    from callbacks import read_offline_run

    logger, recorder = WandbLogger(project="cyclic-test", save_dir=str(offline_wandb)), Recorder()
    fit(tiny_model_class, [CyclicLR("triangular", max_lr=0.1, step_size_epochs=0.5), recorder], epochs=2,
        optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=m.lr, momentum=0.9), logger=logger)
    logger.experiment.finish()
    run = read_offline_run(glob.glob(str(offline_wandb / "wandb" / "offline-run-*"))[0])
    assert run.metric("momentum") == pytest.approx([recorder.momenta[step] for step in sorted(recorder.momenta)])
    assert len(set(run.metric("momentum"))) > 2  # it really cycles


def test_state_dict_is_plain_and_loads_with_defaults():
    cyclic = CyclicLR()
    assert cyclic.state_dict() == {}
    cyclic.load_state_dict({})
    assert cyclic.schedule is None
    cyclic.load_state_dict({"policy": "exp_range", "max_lr": 0.1, "base_lr": 0.02, "ratios": [[1.0]]})
    assert cyclic.schedule == CyclicSchedule(policy="exp_range", max_lr=0.1, base_lr=0.02, ratios=[[1.0]])
    state = cyclic.state_dict()
    assert all(isinstance(v, (str, int, float, bool, list)) for v in state.values())
    assert CyclicSchedule.from_state(state) == cyclic.schedule


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "cosine"}, "triangular, triangular2, exp_range, one_cycle, cosine_restarts"),
        ({"base_lr": 0.1, "max_lr": 0.1}, "max_lr must be > base_lr"),
        ({"base_lr": 0.2, "max_lr": 0.1}, "max_lr must be > base_lr"),
        ({"base_ratio": 0.0}, r"base_ratio must be in \(0, 1\)"),
        ({"base_ratio": 1.0}, r"base_ratio must be in \(0, 1\)"),
        ({"step_size_epochs": 0}, "step_size_epochs must be > 0"),
        ({"gamma": 0.0}, r"gamma must be in \(0, 1\]"),
        ({"gamma": 1.5}, r"gamma must be in \(0, 1\]"),
        ({"anneal": "cosine"}, "cos, linear"),
        ({"policy": "one_cycle", "base_lr": 0.01}, "div_factor"),
        ({"policy": "cosine_restarts", "base_lr": 0.01}, "eta_min"),
        ({"t_mult": 1.5}, "t_mult must be an integer"),
        ({"base_momentum": 0.95, "max_momentum": 0.85}, "base_momentum <= max_momentum"),
    ],
)
def test_bad_arguments_fail_early(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CyclicLR(**kwargs)
