"""What a task contributes to the command line: its model, its data module and what links them.

The CLI (``cli.py``) is one for every task; each task's model module declares a :class:`Task`, and
the CLI reads nothing else about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lightning.pytorch import LightningDataModule, LightningModule


@dataclass(frozen=True)
class Task:
    """A task as the CLI sees it.

    Args:
        model: the LightningModule class (``model:`` in the config).
        datamodule: the LightningDataModule class (``data:``). Besides the callbacks' contract
            (``callbacks/contract.py``) it has ``state_dict()``/``load_state_dict()`` (what a
            checkpoint needs to rebuild it for predict), ``input_name`` (the predictions table's
            first column) and ``predict_inputs()`` (one short description per predicted input).
        links: the data module's attributes that become the model's arguments of the same name.
        predict_example: the ``--data.*`` arguments of the predict command shown after ``fit``.
        own_data_example: the ``--data.*`` arguments of a fit on one's own data, shown after ``fit``.
    """

    model: type[LightningModule]
    datamodule: type[LightningDataModule]
    links: tuple[str, ...]
    predict_example: str
    own_data_example: str
