"""Mid-epoch resume of the data (T42/T43 orders): a resumed epoch serves exactly the batches left."""

import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import DistributedSampler

from datamodules import TextClassificationDataModule
from datamodules.sampler import BucketBatchSampler, EpochShuffle


@pytest.mark.parametrize("bucketing", [True, False])
def test_a_resumed_loader_serves_the_rest_of_the_interrupted_epoch(bucketing):
    dm = TextClassificationDataModule(limit=600, batch_size=16, bucketing=bucketing, bucket_size=4)
    dm.setup("fit")
    loader = dm.train_dataloader()
    _set_sampler_epoch(loader, 2)
    whole = [batch["labels"].tolist() + batch["tokens"][:, 0].tolist() for batch in loader]
    assert len(whole) == len(loader) > 10

    _set_sampler_epoch(loader, 2)
    partial = iter(loader)
    for _ in range(7):
        next(partial)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 7}

    resumed = dm.train_dataloader()  # a new process builds a new loader, then Lightning loads the state
    resumed.load_state_dict(state)
    _set_sampler_epoch(resumed, 2)
    rest = [batch["labels"].tolist() + batch["tokens"][:, 0].tolist() for batch in resumed]
    assert rest == whole[7:]
    assert resumed.state_dict() == {"epoch": 2, "batches": len(whole)}
    assert len([1 for _ in resumed]) == len(whole)  # the next pass is whole again


def test_a_state_from_another_epoch_skips_nothing():
    dm = TextClassificationDataModule(limit=300, batch_size=16)
    dm.setup("fit")
    loader = dm.train_dataloader()
    loader.load_state_dict({"epoch": 0, "batches": 9})  # saved at the end of epoch 0; the resume starts epoch 1
    _set_sampler_epoch(loader, 1)
    assert len(list(loader)) == len(loader)


def test_orders_follow_the_seed_and_the_epoch_not_the_global_generator(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    data = list(range(50))
    a, b = EpochShuffle(data), EpochShuffle(data)
    torch.manual_seed(0)
    first = list(a)
    torch.manual_seed(1)
    assert list(b) == first and sorted(first) == data
    b.set_epoch(1)
    assert list(b) != first
    monkeypatch.setenv("PL_GLOBAL_SEED", "8")
    assert list(EpochShuffle(data)) != first


def test_bucket_order_follows_the_distributed_sampler_epoch():
    lengths = list(range(64))
    shard = DistributedSampler(lengths, num_replicas=2, rank=0, shuffle=True, seed=3)
    sampler = BucketBatchSampler(shard, 4, False, lengths, bucket_size=2, seed=3)
    first = list(sampler)
    assert list(sampler) == first
    shard.set_epoch(1)
    assert list(sampler) != first
    sampler.skip_next(3)
    assert len(list(sampler)) == len(first) - 3
