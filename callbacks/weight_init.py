"""Weight initialisation per layer type (T20, T21, T22), once, before anything else at fit start.

Keras initialises an LSTM with Glorot-uniform input kernels, orthogonal recurrent kernels and a
forget-gate bias of 1; PyTorch draws every RNN weight and bias from U(-1/√H, 1/√H). ``WeightInit``
brings the Keras recipe (and the other classic schemes) to any LightningModule, layer by layer.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import nn
from torch.nn.utils import parametrize
from typing_extensions import override

from .fit_start import FitStartStep
from .wandb_io import find_wandb_logger, run_directory, write_report

SCHEMES = (
    "keep", "uniform", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "lecun_normal",
    "orthogonal", "zeros",
)
# gate blocks stacked in the rows of weight_ih / weight_hh / bias_*: LSTM i, f, g, o; GRU r, z, n
GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}
FORGET_GATE = 1  # the second LSTM block is the forget gate
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _raw(module: nn.Module, name: str) -> torch.Tensor:
    """The stored tensor behind ``module.<name>``, also under a parametrization (e.g. DropConnect)."""
    if parametrize.is_parametrized(module, name):
        return module.parametrizations[name].original
    return getattr(module, name)


def init_tensor(tensor: torch.Tensor, scheme: str, *, scale: float = 0.05, nonlinearity: str = "relu") -> None:
    """Fill ``tensor`` in place with ``scheme`` (one of ``SCHEMES`` but ``keep``), via ``torch.nn.init``.

    ``uniform`` draws from U(-scale, scale); ``lecun_normal`` is the Gaussian with std 1/√fan_in.
    """
    with torch.no_grad():
        if scheme == "uniform":
            nn.init.uniform_(tensor, -scale, scale)
        elif scheme == "xavier_uniform":
            nn.init.xavier_uniform_(tensor)
        elif scheme == "xavier_normal":
            nn.init.xavier_normal_(tensor)
        elif scheme == "kaiming_uniform":
            nn.init.kaiming_uniform_(tensor, nonlinearity=nonlinearity)
        elif scheme == "kaiming_normal":
            nn.init.kaiming_normal_(tensor, nonlinearity=nonlinearity)
        elif scheme == "lecun_normal":
            nn.init.normal_(tensor, 0.0, 1.0 / math.sqrt(nn.init._calculate_correct_fan(tensor, "fan_in")))
        elif scheme == "orthogonal":
            nn.init.orthogonal_(tensor)
        elif scheme == "zeros":
            nn.init.zeros_(tensor)
        else:
            raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}.")


def init_rnn(module: nn.RNNBase, input_scheme: str, recurrent_scheme: str, forget_bias: Optional[float], *,
             scale: float = 0.05) -> list[tuple[str, str]]:
    """Initialise an ``nn.LSTM``/``GRU``/``RNN`` gate block by gate block; returns ``(parameter, what)`` pairs.

    Each gate's block of ``weight_ih`` / ``weight_hh`` gets the scheme on its own (so an orthogonal
    ``weight_hh`` is orthogonal per gate, T21); biases are zeroed, and for an LSTM the forget slice of
    ``bias_ih`` is set to ``forget_bias`` so that ``bias_ih + bias_hh`` sums to it in the forget gate (T22).
    """
    gates = next((g for cls, g in GATES.items() if isinstance(module, cls)), 1)
    hidden = module.hidden_size
    applied = []
    for name in module._flat_weights_names:
        tensor = _raw(module, name)
        if name.startswith(("weight_ih", "weight_hh")):
            scheme = input_scheme if name.startswith("weight_ih") else recurrent_scheme
            if scheme != "keep":
                for block in tensor.split(hidden, dim=0):
                    init_tensor(block, scheme, scale=scale, nonlinearity="tanh")
                applied.append((name, f"{scheme} per gate block ({gates})" if gates > 1 else scheme))
        elif name.startswith("weight_hr"):  # LSTM projection
            if input_scheme != "keep":
                init_tensor(tensor, input_scheme, scale=scale, nonlinearity="tanh")
                applied.append((name, input_scheme))
        elif name.startswith("bias"):
            with torch.no_grad():
                tensor.zero_()
                if isinstance(module, nn.LSTM) and forget_bias is not None and name.startswith("bias_ih"):
                    tensor[FORGET_GATE * hidden : (FORGET_GATE + 1) * hidden] = forget_bias
            is_forget = isinstance(module, nn.LSTM) and forget_bias is not None
            applied.append((name, f"zeros, forget gate {forget_bias:g}" if is_forget and "ih" in name else "zeros"))
    return applied


class WeightInit(FitStartStep):
    r"""Initialise weights per layer type at fit start: T20 schemes, T21 orthogonal recurrent kernels, T22 forget bias.

    The defaults are Keras's LSTM recipe: Glorot-uniform input kernels (``weight_ih``, per gate
    block), orthogonal recurrent kernels (``weight_hh``, each gate's H×H block orthogonal; Saxe et
    al. 2013), zero biases except the LSTM forget gate, whose ``bias_ih`` + ``bias_hh`` slices sum to
    ``forget_bias`` (Jozefowicz et al. 2015), and Glorot-uniform ``Linear`` layers. Use
    ``kaiming_*`` (He et al. 2015) for layers followed by a ReLU, ``lecun_normal`` for the Gaussian
    with std 1/√n, ``uniform`` for U(-``uniform_scale``, ``uniform_scale``); ``keep`` leaves PyTorch's
    own initialisation. Normalisation layers and embeddings are left alone by default; embeddings
    are never touched when a callback that initialises them (``Word2VecInit``) is present; it runs after this one.

    Runs once per fit before the word2vec init and the LR finder (``fit_start_order`` 10), never on
    resume, and the same weights reach every DDP rank (broadcast from rank zero). What it did is
    printed, saved as ``weight_init.json`` in the run directory (when the trainer has a logger), and
    logged as the W&B table ``weight_init/applied``.

    Args:
        linear: scheme for ``nn.Linear`` weights (biases zeroed).
        rnn_input: scheme for the input kernels ``weight_ih`` of ``nn.LSTM``/``GRU``/``RNN``.
        rnn_recurrent: scheme for the recurrent kernels ``weight_hh`` (``orthogonal`` recommended).
        conv: scheme for ``nn.Conv1d/2d/3d`` weights (biases zeroed).
        embedding: scheme for ``nn.Embedding`` weights (the padding row is zeroed again afterwards).
        forget_bias: LSTM forget-gate bias target (sum of both bias vectors); ``None`` zeroes it too.
        uniform_scale: the bound ``s`` of the ``uniform`` scheme.
        exclude: ``fnmatch`` patterns of module names to leave untouched (e.g. ``encoder.*``);
            each must match a module.

    Raises:
        ValueError: an unknown scheme name, ``uniform_scale`` ≤ 0, or (at fit start) an ``exclude``
            pattern that matches no module; the message lists the valid choices.

    Example::

        trainer:
          callbacks:
            - class_path: my_project.callbacks.WeightInit   # T20-T22
              init_args:
                linear: xavier_uniform       # kaiming_uniform for ReLU layers
                rnn_input: xavier_uniform
                rnn_recurrent: orthogonal    # T21, per gate block
                forget_bias: 1.0             # T22: bias_ih + bias_hh of the forget gate
    """

    fit_start_order = 10

    def __init__(
        self,
        linear: str = "xavier_uniform",
        rnn_input: str = "xavier_uniform",
        rnn_recurrent: str = "orthogonal",
        conv: str = "kaiming_uniform",
        embedding: str = "keep",
        forget_bias: Optional[float] = 1.0,
        uniform_scale: float = 0.05,
        exclude: Sequence[str] = (),
    ) -> None:
        for argument, scheme in (("linear", linear), ("rnn_input", rnn_input), ("rnn_recurrent", rnn_recurrent),
                                 ("conv", conv), ("embedding", embedding)):
            if scheme not in SCHEMES:
                raise ValueError(f"unknown {argument} scheme {scheme!r}; choose one of {', '.join(SCHEMES)}.")
        if not uniform_scale > 0:
            raise ValueError(f"uniform_scale must be > 0, got {uniform_scale}.")
        if isinstance(exclude, str):
            exclude = [exclude]
        self.linear = linear
        self.rnn_input = rnn_input
        self.rnn_recurrent = rnn_recurrent
        self.conv = conv
        self.embedding = embedding
        self.forget_bias = forget_bias
        self.uniform_scale = uniform_scale
        self.exclude = list(exclude)
        self.applied: list[dict[str, Any]] = []
        self.done = False  # True once applied, also in a run resumed from a checkpoint of such a run

    def _excluded(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(name, pattern + ".*")
                   for pattern in self.exclude)

    def initialise(self, module: nn.Module, skip_embeddings: bool = False) -> list[dict[str, Any]]:
        """Initialise ``module``'s layers in place; returns one row per parameter touched (no Trainer needed)."""
        names = [name for name, _ in module.named_modules() if name]
        for pattern in self.exclude:
            if not any(fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n, pattern + ".*") for n in names):
                raise ValueError(
                    f"WeightInit: exclude pattern {pattern!r} matches no module; the modules are: {', '.join(names)}."
                )
        rows: list[dict[str, Any]] = []

        def record(prefix: str, parameter: str, what: str, tensor: torch.Tensor) -> None:
            rows.append({"parameter": f"{prefix}.{parameter}" if prefix else parameter,
                         "shape": list(tensor.shape), "init": what})

        def simple(prefix: str, layer: nn.Module, scheme: str, nonlinearity: str = "relu") -> None:
            if scheme == "keep":
                return
            init_tensor(_raw(layer, "weight"), scheme, scale=self.uniform_scale, nonlinearity=nonlinearity)
            record(prefix, "weight", scheme, _raw(layer, "weight"))
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(_raw(layer, "bias"))
                record(prefix, "bias", "zeros", _raw(layer, "bias"))

        for prefix, layer in module.named_modules():
            if self._excluded(prefix):
                continue
            if isinstance(layer, nn.RNNBase):
                for parameter, what in init_rnn(layer, self.rnn_input, self.rnn_recurrent, self.forget_bias,
                                                scale=self.uniform_scale):
                    record(prefix, parameter, what, _raw(layer, parameter))
            elif isinstance(layer, nn.Linear):
                simple(prefix, layer, self.linear)
            elif isinstance(layer, _CONV):
                simple(prefix, layer, self.conv)
            elif isinstance(layer, (nn.Embedding, nn.EmbeddingBag)) and not skip_embeddings and self.embedding != "keep":
                init_tensor(layer.weight, self.embedding, scale=self.uniform_scale, nonlinearity="linear")
                if getattr(layer, "padding_idx", None) is not None:
                    with torch.no_grad():
                        layer.weight[layer.padding_idx].zero_()
                record(prefix, "weight", self.embedding, layer.weight)
        return rows

    @override
    def fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.done:  # resumed: the checkpoint's weights are the ones to keep
            return
        skip_embeddings = any(isinstance(cb, FitStartStep) and "embeddings" in cb.initialises for cb in trainer.callbacks)
        self.applied = self.initialise(pl_module, skip_embeddings=skip_embeddings)
        if torch.distributed.is_available() and torch.distributed.is_initialized() and trainer.world_size > 1:
            with torch.no_grad():  # every rank starts from rank zero's draw
                for tensor in [*pl_module.parameters(), *pl_module.buffers()]:
                    torch.distributed.broadcast(tensor.data, src=0)
        self.done = True
        self._report(trainer, skip_embeddings)

    def _report(self, trainer: Trainer, skipped_embeddings: bool) -> None:
        note = " (embeddings left to the embedding initialiser)" if skipped_embeddings else ""
        rank_zero_info(f"WeightInit: initialised {len(self.applied)} parameter tensors{note}.")
        if not trainer.loggers:  # no run of its own: nowhere to save the record without cluttering a shared folder
            return
        folder = run_directory(trainer)  # on every rank: it may broadcast
        if not trainer.is_global_zero:
            return
        write_report(trainer, folder, "weight_init.json", json.dumps(self.applied, indent=1))
        logger = find_wandb_logger(trainer)
        if logger is None:
            return
        import wandb

        table = wandb.Table(columns=["parameter", "shape", "init"],
                            data=[[row["parameter"], str(row["shape"]), row["init"]] for row in self.applied])
        logger.experiment.log({"weight_init/applied": table}, commit=False)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done = state_dict.get("done", False)

