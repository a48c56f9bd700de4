"""Look inside the network at low frequency: gates, gradients, activations (T56).

``wandb.watch`` draws histograms of every tensor and silently drops NaN/Inf values; fastai's
ActivationStats draws them too. This logs a few scalars a user can read at a glance (the norm of
each LSTM/GRU gate's input and recurrent kernel, each layer's gradient norm, activation mean/std,
the share of dead ReLUs and of saturated tanh/sigmoid units) and counts NaN/Inf values instead of
dropping them.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.optim import Optimizer
from typing_extensions import override

from .wandb_io import find_wandb_logger, run_directory

#: gate order of PyTorch's fused kernels (the rows of weight_ih / weight_hh, in chunks)
GATES = {nn.LSTM: "ifgo", nn.LSTMCell: "ifgo", nn.GRU: "rzn", nn.GRUCell: "rzn"}
RELUS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
BOUNDED = (nn.Tanh, nn.Sigmoid, nn.RNNBase, nn.RNNCellBase)  # outputs in (-1, 1) or (0, 1)
SATURATION = 0.99  # |tanh| above this, or sigmoid within 1 - this of 0 or 1, counts as saturated


def dead_share(activations: torch.Tensor) -> torch.Tensor:
    """The share of units that are 0 (or less) for every example and position of a batch of ReLU outputs.

    A unit is a channel of ``[B, C, H, W]`` (or ``[B, C, D, H, W]``) feature maps, dim 1, dead when
    it is off at every pixel of every image; of ``[B, F]`` and ``[B, T, F]`` outputs it is a
    feature, the last dim.

    Example:
        >>> maps = torch.ones(2, 4, 3, 3); maps[:, 1] = 0; maps[0, 2, 0, 0] = 0
        >>> float(dead_share(maps))  # channel 1 is off everywhere; channel 2 only at one pixel
        0.25
    """
    axis = 1 if activations.dim() >= 4 else -1
    units = activations.movedim(axis, -1).reshape(-1, activations.shape[axis])
    return (units <= 0).all(dim=0).float().mean()


def _finite(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The values (flattened, float) with NaN/Inf set to 0, the mask of finite ones, and how many were not.

    Tensors, not Python numbers: nothing here waits for the device; one ``tolist`` at the end does.
    """
    values = tensor.detach().float().flatten()
    mask = torch.isfinite(values)
    return torch.where(mask, values, torch.zeros((), device=values.device)), mask, (~mask).sum()


def _finite_norm(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The L2 norm of the finite values and the NaN/Inf count."""
    values, _, bad = _finite(tensor)
    return torch.linalg.vector_norm(values), bad


def _output(output: Any) -> Optional[torch.Tensor]:
    if isinstance(output, (tuple, list)):  # RNNs: (output, hidden)
        output = output[0]
    if isinstance(output, PackedSequence):
        output = output.data
    return output if isinstance(output, torch.Tensor) and output.is_floating_point() else None


class Introspection(Callback):
    r"""Per-gate weight and gradient norms, per-layer gradient norms and activation statistics (T56).

    Every ``every_n_steps`` optimizer steps, just before the update (gradients before clipping):

    - ``intro/<rnn>.weight_{ih,hh}_l<k>/<gate>/weight`` and ``.../grad``: L2 norms of each gate's
      rows of an ``nn.LSTM`` (gates i, f, g, o) or ``nn.GRU`` (r, z, n) input and recurrent kernel;
    - ``intro/weight/<layer>`` and ``intro/grad/<layer>``: L2 norms of each module's own parameters;
    - ``intro/act/<layer>/mean`` and ``/std`` for ReLU, tanh, sigmoid and recurrent modules, with
      ``/dead`` (share of ReLU units that are 0 for the whole batch: features of ``[B, F]`` and
      ``[B, T, F]`` outputs, channels of ``[B, C, H, W]`` feature maps) and ``/saturated`` (share of
      tanh/sigmoid outputs, and of LSTM/GRU hidden states, within 1% of their bounds; the gates
      inside PyTorch's fused kernels are not exposed, so the hidden state stands in for them);
    - ``intro/nonfinite/<tensor>``: NaN/Inf counts of any weight, gradient or activation that has
      them, and ``intro/nonfinite_total`` always. Norms and statistics are taken over the finite
      values, so a NaN never hides the rest.

    Activations are recorded by forward hooks attached only for the measured step, so the other
    steps cost nothing. Only ``nn.Module`` activations are seen (not ``torch.relu`` calls).
    With ``histograms: true`` and a W&B logger, weight and gradient histograms of every parameter
    are sent too (finite values; the counts of the others are in the scalars), and their bin counts
    appended to ``introspection_histograms.jsonl`` in the run directory.

    Args:
        every_n_steps: measure every n optimizer steps (the n-th, 2n-th, ...), whatever the
            trainer's ``log_every_n_steps``.
        histograms: also log weight and gradient histograms.
        bins: histogram bins.

    Raises:
        ValueError: ``every_n_steps`` or ``bins`` < 1.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.Introspection   # T56
              init_args:
                every_n_steps: 100
                histograms: false
    """

    def __init__(self, every_n_steps: int = 100, histograms: bool = False, bins: int = 64) -> None:
        if not (isinstance(every_n_steps, int) and every_n_steps >= 1):
            raise ValueError(f"every_n_steps must be an integer >= 1, got {every_n_steps}.")
        if not (isinstance(bins, int) and bins >= 1):
            raise ValueError(f"bins must be an integer >= 1, got {bins}.")
        self.every_n_steps = every_n_steps
        self.histograms = histograms
        self.bins = bins
        self._handles: list[Any] = []
        self._activations: dict[str, torch.Tensor] = {}
        self.last: dict[str, float] = {}  # the latest measurement

    def _due(self, trainer: Trainer) -> bool:
        return (trainer.global_step + 1) % self.every_n_steps == 0

    # ------------------------------------------------------------------ activations
    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._remove_hooks()
        if not self._due(trainer):
            return
        self._activations = {}
        for name, module in pl_module.named_modules():
            if isinstance(module, RELUS + BOUNDED):
                self._handles.append(module.register_forward_hook(self._hook(name or "model", module)))

    def _hook(self, name: str, module: nn.Module) -> Any:
        def record(_: nn.Module, __: Any, output: Any) -> None:
            tensor = _output(output)
            if tensor is None:
                return
            if tensor.numel() == 0:
                return
            values, mask, bad = _finite(tensor)
            stats = self._activations
            key = f"intro/act/{name}"
            previous = stats.get(f"intro/nonfinite/act/{name}")  # a module called twice in one step: add up
            stats[f"intro/nonfinite/act/{name}"] = bad if previous is None else previous + bad
            count = mask.sum().clamp(min=1)
            mean = values.sum() / count
            stats[f"{key}/mean"] = mean
            squares = (torch.where(mask, values - mean, 0.0) ** 2).sum()
            stats[f"{key}/std"] = torch.sqrt(squares / (count - 1).clamp(min=1))
            if isinstance(module, RELUS):
                stats[f"{key}/dead"] = dead_share(tensor.detach())
            elif isinstance(module, nn.Sigmoid):
                stats[f"{key}/saturated"] = (((values < 1 - SATURATION) | (values > SATURATION)) & mask).sum() / count
            else:
                stats[f"{key}/saturated"] = ((values.abs() > SATURATION) & mask).sum() / count

        return record

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # ------------------------------------------------------------------ weights and gradients
    @override
    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer) -> None:
        if not self._due(trainer):
            return
        self._remove_hooks()
        metrics: dict[str, torch.Tensor] = dict(self._activations)
        self._activations = {}

        for module_name, module in pl_module.named_modules():
            own = list(module.named_parameters(recurse=False))
            if not own:
                continue
            label = module_name or "model"
            weight = [p.detach().flatten() for _, p in own]
            grads = [p.grad.detach().flatten() for _, p in own if p.grad is not None]
            norm, bad = _finite_norm(torch.cat(weight))
            metrics[f"intro/weight/{label}"], metrics[f"intro/nonfinite/weight/{label}"] = norm, bad
            if grads:
                norm, bad = _finite_norm(torch.cat(grads))
                metrics[f"intro/grad/{label}"], metrics[f"intro/nonfinite/grad/{label}"] = norm, bad
            gates = next((g for kind, g in GATES.items() if isinstance(module, kind)), None)
            if gates is None:
                continue
            for param_name, param in module.named_parameters():
                # DropConnect (torch.nn.utils.parametrize) moves weight_hh_l0 to parametrizations.weight_hh_l0.original
                param_name = param_name.replace("parametrizations.", "").replace(".original", "")
                if not param_name.startswith(("weight_ih", "weight_hh")):
                    continue
                for gate, rows in zip(gates, param.detach().chunk(len(gates), dim=0)):
                    metrics[f"intro/{label}.{param_name}/{gate}/weight"] = _finite_norm(rows)[0]
                if param.grad is not None:
                    for gate, rows in zip(gates, param.grad.detach().chunk(len(gates), dim=0)):
                        metrics[f"intro/{label}.{param_name}/{gate}/grad"] = _finite_norm(rows)[0]
        # NaN/Inf counts were counted per module above (gate rows are part of their module's weights)
        counts = [v for k, v in metrics.items() if k.startswith("intro/nonfinite/")]
        metrics["intro/nonfinite_total"] = torch.stack(counts).sum() if counts else torch.zeros(())
        keys = list(metrics)
        device = metrics["intro/nonfinite_total"].device
        values = torch.stack([metrics[k].to(device=device, dtype=torch.float32) for k in keys]).tolist()  # one sync
        self.last = {k: v for k, v in zip(keys, values)
                     if not (k.startswith("intro/nonfinite/") and v == 0)}  # counts only where there are any
        # straight to the loggers, as LearningRateMonitor does: a value given to `pl_module.log` in a
        # hook on some steps only is logged again, stale, at every later step until the next one
        step = trainer.fit_loop.epoch_loop._batches_that_stepped
        for logger in trainer.loggers:
            logger.log_metrics(self.last, step=step)
        if self.histograms:
            self._log_histograms(trainer, pl_module)

    def _log_histograms(self, trainer: Trainer, pl_module: LightningModule) -> None:
        folder = run_directory(trainer)  # on every rank: it may broadcast
        if not trainer.is_global_zero:
            return
        rows, payload = [], {}
        logger = find_wandb_logger(trainer)
        for name, param in pl_module.named_parameters():
            for kind, tensor in (("weight", param), ("grad", param.grad)):
                if tensor is None:
                    continue
                values, mask, bad = _finite(tensor)
                values, bad = values[mask], int(bad)
                if not values.numel():
                    continue
                counts, edges = torch.histogram(values.cpu(), bins=self.bins)
                rows.append({"step": trainer.global_step, "tensor": f"{kind}/{name}", "nonfinite": bad,
                             "counts": counts.tolist(), "edges": edges.tolist()})
                if logger is not None:
                    import wandb

                    histogram = wandb.Histogram(np_histogram=(counts.tolist(), edges.tolist()))
                    payload[f"intro/hist/{kind}/{name}"] = histogram
        if not trainer.fast_dev_run:  # "nothing saved"
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / "introspection_histograms.jsonl").open("a", encoding="utf-8") as file:
                file.write("".join(json.dumps(row) + "\n" for row in rows))
        if logger is not None and payload:
            logger.experiment.log(payload, commit=False)

    @override
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._remove_hooks()
