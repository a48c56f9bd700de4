# task: text_classification
"""The text classifier on its own: packing, shapes, probabilities, arguments, optimizer."""

from __future__ import annotations

import pytest
import torch

from {{ cookiecutter.package_name }}.models.text_classification import TextClassifier

VOCAB, CLASSES, PAD = 50, 3, 0


def make_model(**kwargs) -> TextClassifier:
    torch.manual_seed(0)
    arguments = dict(vocab_size=VOCAB, num_classes=CLASSES, pad_index=PAD, embedding_dim=8, hidden_size=6)
    arguments.update(kwargs)
    return TextClassifier(**arguments).eval()


def batch_of(*sequences: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``tokens [B, T]`` and ``lengths [B]``."""
    lengths = torch.tensor([len(s) for s in sequences])
    tokens = torch.full((len(sequences), int(lengths.max())), PAD, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor(sequence)
    return tokens, lengths


SHORT = [5, 17, 3]
LONG = [9, 2, 44, 31, 7, 7, 12, 8, 25]
MIDDLE = [11, 4, 30, 6, 19]

ARCHITECTURES = [
    pytest.param(rnn, bidirectional, layers, id=f"{rnn}-{'bi' if bidirectional else 'uni'}-{layers}layer")
    for rnn in ("lstm", "gru")
    for bidirectional in (False, True)
    for layers in (1, 2)
]


@pytest.mark.parametrize("rnn, bidirectional, num_layers", ARCHITECTURES)
def test_padding_does_not_change_the_logits(rnn, bidirectional, num_layers):
    model = make_model(rnn=rnn, bidirectional=bidirectional, num_layers=num_layers, dropout=0.3)
    with torch.no_grad():
        alone = model(*batch_of(SHORT))
        # short first, last and in the middle: packing sorts by length and must restore the order
        batched = model(*batch_of(SHORT, LONG, MIDDLE))
        reordered = model(*batch_of(LONG, MIDDLE, SHORT))
        long_alone = model(*batch_of(LONG))
        middle_alone = model(*batch_of(MIDDLE))

    assert batched.shape == (3, CLASSES)
    torch.testing.assert_close(batched[0], alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reordered[2], alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched[1], long_alone[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reordered[1], middle_alone[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rnn, bidirectional, num_layers", ARCHITECTURES)
def test_head_reads_the_top_layer_final_states(rnn, bidirectional, num_layers):
    """The classifier sees the last layer's state after the last real token, both directions."""
    model = make_model(rnn=rnn, bidirectional=bidirectional, num_layers=num_layers, dropout=0.0)
    tokens, lengths = batch_of(MIDDLE)
    with torch.no_grad():
        outputs, _ = model.rnn(model.embedding(tokens))  # one unpadded sequence: no packing needed
        hidden = model.rnn.hidden_size
        final = outputs[:, -1, :hidden]  # forward direction after the last token
        if bidirectional:
            final = torch.cat([final, outputs[:, 0, hidden:]], dim=-1)  # backward direction after the first
        expected = model.head(final)
        torch.testing.assert_close(model(tokens, lengths), expected, rtol=1e-5, atol=1e-6)


def test_logits_shape_and_probabilities():
    model = make_model(num_classes=4)
    tokens, lengths = batch_of(SHORT, LONG, MIDDLE, [1], [2, 3])
    batch = {"tokens": tokens, "lengths": lengths}
    with torch.no_grad():
        assert model(tokens, lengths).shape == (5, 4)
        probabilities = model.predict_step(batch, 0)
    assert probabilities.shape == (5, 4)
    assert (probabilities >= 0).all()
    torch.testing.assert_close(probabilities.sum(dim=-1), torch.ones(5))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"lr": 0.0}, "lr"),
        ({"num_classes": 1}, "num_classes"),
        ({"vocab_size": 1}, "vocab_size"),
    ],
    ids=["dropout-1", "dropout-negative", "lr-0", "one-class", "vocab-1"],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_model(**kwargs)


def test_configure_optimizers_uses_model_lr():
    model = make_model(lr=0.01)
    model.lr = 0.123  # what an LR finder does
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.123)
    assert {id(p) for group in optimizer.param_groups for p in group["params"]} == {
        id(p) for p in model.parameters()
    }


def test_configure_optimizers_with_plateau_scheduler_follows_monitor():
    from functools import partial

    model = make_model(
        monitor="val/f1",
        scheduler=partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="max"),
    )
    config = model.configure_optimizers()
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert config["lr_scheduler"]["monitor"] == "val/f1"


def _groups(model: TextClassifier) -> dict[str, dict]:
    optimizer = model.configure_optimizers()
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    return {group["name"]: group for group in optimizer.param_groups}


def _names(model: TextClassifier, group: dict) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_weight_decay_groups_spare_biases_norms_and_embeddings():
    """T32: decay on input kernels and the head, separate decay on recurrent kernels, none elsewhere."""
    model = make_model(norm="layer", weight_decay=1e-3, recurrent_weight_decay=1e-4, weight_dropout=0.2,
                       optimizer=torch.optim.AdamW)
    optimizer = model.configure_optimizers()
    assert type(optimizer) is torch.optim.AdamW
    groups = _groups(model)
    assert _names(model, groups["decay"]) == {"rnn.weight_ih_l0", "head.weight"}
    assert _names(model, groups["recurrent"]) == {"rnn.parametrizations.weight_hh_l0.original"}
    assert _names(model, groups["no_decay"]) == {
        "embedding.weight", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "norm.weight", "norm.bias", "head.bias",
    }
    assert [groups[name]["weight_decay"] for name in ("decay", "recurrent", "no_decay")] == [1e-3, 1e-4, 0.0]
    counted = [p for group in groups.values() for p in group["params"]]
    assert len(counted) == len({id(p) for p in counted}) == len(list(model.parameters()))


def test_weight_decay_none_keeps_the_optimizers_own_value():
    from functools import partial

    model = make_model(optimizer=partial(torch.optim.AdamW, weight_decay=0.05))
    groups = _groups(model)
    assert groups["decay"]["weight_decay"] == groups["recurrent"]["weight_decay"] == 0.05
    assert groups["no_decay"]["weight_decay"] == 0.0


@pytest.mark.parametrize(
    "optimizer, kwargs",
    [
        (torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "lr": 0.3}),
        (torch.optim.Adam, {}),
        (torch.optim.AdamW, {}),
        (torch.optim.RMSprop, {}),
        (torch.optim.Adagrad, {}),
    ],
    ids=["sgd-nesterov", "adam", "adamw", "rmsprop", "adagrad"],
)
def test_optimizer_menu_trains(optimizer, kwargs):
    """T08: each optimizer of the menu builds from the parameter groups and lowers the loss on a fixed batch."""
    from functools import partial

    model = make_model(optimizer=partial(optimizer, **kwargs), lr=kwargs.pop("lr", 0.05), dropout=0.0).train()
    opt = model.configure_optimizers()
    tokens, lengths = batch_of(SHORT, LONG, MIDDLE)
    labels = torch.tensor([0, 1, 2])
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = model.loss(model(tokens, lengths), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert type(opt) is optimizer and losses[-1] < 0.5 * losses[0]


def test_locked_dropout_shares_one_mask_across_time():
    from {{ cookiecutter.package_name }}.models.recurrent import LockedDropout

    torch.manual_seed(0)
    dropout = LockedDropout(0.5).train()
    out = dropout(torch.ones(4, 7, 10))
    assert torch.equal(out, out[:, :1, :].expand_as(out))  # same mask at every time step
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(dropout.eval()(torch.ones(4, 7, 10)), torch.ones(4, 7, 10))


def test_locked_dropout_option_replaces_the_input_dropout_only():
    model = make_model(locked_dropout=True, dropout=0.4)
    assert type(model.input_dropout).__name__ == "LockedDropout" and model.input_dropout.p == 0.4
    assert isinstance(model.dropout, torch.nn.Dropout)


def test_weight_dropout_drops_recurrent_weights_in_training_only():
    """T31 DropConnect: training forwards differ, evaluation uses the stored weights unchanged."""
    model = make_model(weight_dropout=0.5, dropout=0.0, num_layers=2, bidirectional=True)
    plain = make_model(dropout=0.0, num_layers=2, bidirectional=True)
    with torch.no_grad():
        for name in plain.rnn._flat_weights_names:
            getattr(plain.rnn, name).copy_(getattr(model.rnn, name))
        for name in ("embedding.weight", "head.weight", "head.bias"):
            plain.get_parameter(name).copy_(model.get_parameter(name))
    tokens, lengths = batch_of(SHORT, LONG, MIDDLE)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(tokens, lengths), plain.eval()(tokens, lengths))
        model.train()
        assert not torch.allclose(model(tokens, lengths), model(tokens, lengths))
    model.train()
    model(tokens, lengths).sum().backward()
    assert model.rnn.parametrizations.weight_hh_l0.original.grad.abs().sum() > 0
    assert len([n for n in dict(model.named_parameters()) if "weight_hh" in n]) == 4


@pytest.mark.parametrize("norm, layer", [("batch", torch.nn.BatchNorm1d), ("layer", torch.nn.LayerNorm)])
def test_norm_on_the_final_state(norm, layer):
    model = make_model(norm=norm).train()
    assert isinstance(model.norm, layer)
    tokens, lengths = batch_of(SHORT, LONG, MIDDLE)
    assert model(tokens, lengths).shape == (3, CLASSES)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weight_dropout": 1.0}, "weight_dropout must be in [0, 1), got 1.0."),
        ({"norm": "group"}, "norm must be one of none, batch, layer, got 'group'."),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0 or null (the optimizer's own), got -1.0."),
        ({"recurrent_weight_decay": -1.0}, "recurrent_weight_decay must be >= 0 or null (as weight_decay), got -1.0."),
    ],
    ids=["weight-dropout-1", "norm-group", "decay-negative", "recurrent-decay-negative"],
)
def test_bad_regularisation_arguments(kwargs, message):
    with pytest.raises(ValueError) as error:
        make_model(**kwargs)
    assert str(error.value) == message


def test_one_plain_group_when_every_group_would_decay_alike():
    """Adam without weight decay: nothing to tell apart, so LearningRateMonitor keeps its plain `lr-Adam` key."""
    model = make_model(optimizer=torch.optim.Adam)
    optimizer = model.configure_optimizers()
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["weight_decay"] == 0


def test_downsample_front_end_shortens_texts_before_the_rnn():
    """T44: a strided Conv1D reads ~stride tokens per RNN step; each text keeps its own length."""
    model = make_model(downsample=4, dropout=0.0)
    tokens, lengths = batch_of(LONG, SHORT, [1])
    embedded = model.embedding(tokens)
    out, short = model.downsample(embedded, lengths)
    assert out.shape[:2] == (3, 9 // 4) and short.tolist() == [2, 1, 1]  # floor(len / 4), at least one window
    with torch.no_grad():
        torch.testing.assert_close(model(*batch_of(SHORT, LONG))[1], model(*batch_of(LONG))[0], rtol=1e-5, atol=1e-6)
    loss = torch.nn.functional.cross_entropy(model.train()(tokens, lengths), torch.tensor([0, 1, 2]))
    loss.backward()
    assert model.downsample.conv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"downsample_kernel must be >= downsample \(4\) so no step is skipped, got 2"):
        make_model(downsample=4, downsample_kernel=2)
    with pytest.raises(ValueError, match=r"downsample must be >= 1 \(1: no convolution front-end\), got 0"):
        make_model(downsample=0)


@pytest.mark.parametrize("rnn, num_layers", [("lstm", 1), ("gru", 2)])
def test_unidirectional_state_equals_the_packed_final_state(rnn, num_layers):
    """T43: the unpacked forward pass reads each text's state at its last token, as packing would."""
    from torch.nn.utils.rnn import pack_padded_sequence

    model = make_model(rnn=rnn, num_layers=num_layers, dropout=0.0)
    tokens, lengths = batch_of(SHORT, LONG, MIDDLE, [4])
    with torch.no_grad():
        packed = pack_padded_sequence(model.embedding(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, hidden = model.rnn(packed)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        torch.testing.assert_close(model(tokens, lengths), model.head(hidden[-1]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["max", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_pooling_reads_each_texts_own_steps(pooling, bidirectional):
    from {{ cookiecutter.package_name }}.models.recurrent import pool

    model = make_model(pooling=pooling, bidirectional=bidirectional, dropout=0.0)
    with torch.no_grad():
        alone, batched = model(*batch_of(SHORT)), model(*batch_of(LONG, SHORT))
        torch.testing.assert_close(batched[1], alone[0], rtol=1e-5, atol=1e-6)  # padding never pooled
        outputs, _ = model.rnn(model.embedding(batch_of(MIDDLE)[0]))
        expected = outputs.amax(dim=1) if pooling == "max" else outputs.mean(dim=1)
        torch.testing.assert_close(model(*batch_of(MIDDLE)), model.head(expected), rtol=1e-5, atol=1e-6)
    assert pool(torch.tensor([[[1.0], [5.0], [9.0]]]), torch.tensor([2]), "max").item() == 5.0
    with pytest.raises(ValueError, match="pooling must be one of auto, last, max, mean, got 'sum'"):
        make_model(pooling="sum")


def test_pooling_auto_follows_the_data_modules_long_texts():
    assert make_model(pooling="auto", long_texts=True).pooling == "max"
    assert make_model(pooling="auto", long_texts=False).pooling == "last"
