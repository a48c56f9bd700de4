# task: text_classification
"""The bundled MR data as this project's data module serves it."""

from __future__ import annotations

import pytest
import torch

from {{ cookiecutter.package_name }}.datamodules import TextClassificationDataModule


@pytest.fixture(scope="module")
def mr() -> TextClassificationDataModule:
    data = TextClassificationDataModule(dataset="mr", limit=600, batch_size=32)
    data.setup("fit")
    return data


def test_bundled_mr_facts(mr):
    assert mr.vocab_size > 2  # more than <pad> and <unk>
    assert mr.num_classes == 2
    assert mr.labels == ["negative", "positive"]
    assert mr.pad_index == 0
    assert len(mr.datasets["train"]) > len(mr.datasets["val"]) > 0


def test_padded_batch(mr):
    batch = next(iter(mr.train_dataloader()))
    assert set(batch) == {"tokens", "lengths", "labels"}
    tokens, lengths, labels = batch["tokens"], batch["lengths"], batch["labels"]
    assert tokens.dtype == lengths.dtype == labels.dtype == torch.long
    assert tokens.shape == (32, int(lengths.max()))
    assert lengths.shape == labels.shape == (32,)
    assert (lengths >= 1).all()
    assert set(labels.tolist()) <= {0, 1}

    positions = torch.arange(tokens.shape[1]).expand_as(tokens)
    padding = positions >= lengths.unsqueeze(1)
    assert (tokens[padding] == mr.pad_index).all(), "positions past each length must hold pad_index"
    assert (tokens[~padding] != mr.pad_index).all(), "real tokens never use pad_index"
    assert torch.equal((tokens != mr.pad_index).sum(dim=1), lengths)


def test_validation_batches_keep_their_order(mr):
    first = [batch["tokens"] for batch in mr.val_dataloader()]
    second = [batch["tokens"] for batch in mr.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
