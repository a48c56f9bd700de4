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
