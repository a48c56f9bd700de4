"""LinearLRScaling (T06): the LR grows with the batch size once, in real fits on MR."""

from __future__ import annotations

import glob

import pytest
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from callbacks import read_offline_run
from callbacks.lr_scaling import LinearLRScaling, linear_scale
from datamodules import TextClassificationDataModule


class LRPerStep(Callback):
    def __init__(self) -> None:
        self.lrs: dict[int, float] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs[trainer.global_step] = optimizer.param_groups[0]["lr"]


def fit(model_class, callbacks, *, batch_size=64, epochs=1, data=None, ckpt_path=None, logger=False, **model_args):
    torch.manual_seed(0)
    data = data or TextClassificationDataModule(limit=400, batch_size=batch_size)
    model = model_class(data.vocab_size, data.num_classes, **model_args)
    trainer = Trainer(max_epochs=epochs, callbacks=list(callbacks), logger=logger, log_every_n_steps=1,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                      num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer, model


def test_linear_rule():
    assert linear_scale(64, 32) == 2.0 and linear_scale(16, 32) == 0.5


def test_batch_64_from_base_32_doubles_the_lr(tiny_model_class):
    scaling, lrs = LinearLRScaling(base_batch_size=32), LRPerStep()
    trainer, model = fit(tiny_model_class, [scaling, lrs], lr=0.05)
    assert set(lrs.lrs.values()) == {0.1}
    assert model.lr == 0.1
    assert float(trainer.callback_metrics["lr/scale"]) == 2.0
    assert float(trainer.callback_metrics["lr/scaled_from"]) == pytest.approx(0.05)
    assert scaling.state_dict() == {"applied": True, "scale": 2.0, "scaled_from": 0.05}


def test_scales_torch_schedulers_from_configure_optimizers(tiny_model_class):
    class WithOneCycle(tiny_model_class):
        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.lr, total_steps=8)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    plain, scaled = LRPerStep(), LRPerStep()
    fit(WithOneCycle, [plain], batch_size=32, lr=0.05)
    fit(WithOneCycle, [LinearLRScaling(16), scaled], batch_size=32, lr=0.05)  # 32 / 16: twice the LR at every step
    assert len(plain.lrs) == 8
    assert scaled.lrs == pytest.approx({step: 2 * lr for step, lr in plain.lrs.items()}, rel=1e-12)


def test_effective_batch_counts_gradient_accumulation(tiny_model_class):
    scaling = LinearLRScaling(base_batch_size=32, batch_size=16)
    torch.manual_seed(0)
    data = TextClassificationDataModule(limit=400, batch_size=16)
    model = tiny_model_class(data.vocab_size, data.num_classes, lr=0.05)
    trainer = Trainer(max_epochs=1, callbacks=[scaling], logger=False, enable_progress_bar=False,
                      enable_checkpointing=False, accumulate_grad_batches=4, num_sanity_val_steps=0,
                      limit_train_batches=4, limit_val_batches=0)
    trainer.fit(model, datamodule=data)
    assert scaling.scale == 2.0 and model.lr == 0.1


def test_resume_does_not_scale_twice(tmp_path, tiny_model_class):
    path = tmp_path / "epoch-0.ckpt"
    fit(tiny_model_class, [LinearLRScaling(32)], lr=0.05)[0].save_checkpoint(path)
    scaling, lrs = LinearLRScaling(32), LRPerStep()
    trainer, model = fit(tiny_model_class, [scaling, lrs], epochs=2, lr=0.05, ckpt_path=str(path))
    assert lrs.lrs and set(lrs.lrs.values()) == {0.1}  # the checkpoint's scaled LR, not 0.2
    assert model.lr == 0.1  # the rebuilt module agrees with its optimizer
    assert scaling.applied and scaling.scale == 2.0
    assert "lr/scale" not in trainer.callback_metrics  # logged once, in the first run


def test_writes_the_scale_to_the_wandb_summary(offline_wandb, tiny_model_class):
    logger = WandbLogger(project="lr-scaling-test", save_dir=str(offline_wandb))
    fit(tiny_model_class, [LinearLRScaling(128)], logger=logger, lr=0.2)
    logger.experiment.finish()
    run = read_offline_run(glob.glob(str(offline_wandb / "wandb" / "offline-run-*"))[0])
    assert run.summary["lr/scale"] == 0.5 and run.summary["lr/scaled_from"] == pytest.approx(0.2)
    assert run.metric("lr/scale") == [0.5]


class NoBatchSize(LightningDataModule):
    def __init__(self, inner: TextClassificationDataModule) -> None:
        super().__init__()
        self.inner, self.vocab_size, self.num_classes = inner, inner.vocab_size, inner.num_classes

    def setup(self, stage: str) -> None:
        self.inner.setup(stage)

    def train_dataloader(self):
        return self.inner.train_dataloader()

    def val_dataloader(self):
        return self.inner.val_dataloader()


def test_a_datamodule_without_batch_size_asks_for_the_argument(tiny_model_class):
    data = NoBatchSize(TextClassificationDataModule(limit=400, batch_size=32))
    with pytest.raises(RuntimeError, match=r"no integer `batch_size`.*Pass `batch_size=`"):
        fit(tiny_model_class, [LinearLRScaling(32)], data=data)
    scaling = LinearLRScaling(32, batch_size=96)
    _, model = fit(tiny_model_class, [scaling], data=data, lr=0.05)
    assert scaling.scale == 3.0 and model.lr == pytest.approx(0.15)


def test_state_dict_loads_with_defaults():
    scaling = LinearLRScaling(32)
    scaling.load_state_dict({})
    assert (scaling.applied, scaling.scale, scaling.scaled_from) == (False, None, None)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"base_batch_size": 0}, "base_batch_size must be a positive integer"),
    ({"base_batch_size": -32}, "base_batch_size must be a positive integer"),
    ({"base_batch_size": 32, "batch_size": 0}, "batch_size must be a positive integer"),
])
def test_bad_arguments_fail_early(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LinearLRScaling(**kwargs)
