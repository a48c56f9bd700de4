"""Why the text model runs its RNN unpacked: torch's backward through a packed RNN on CPU.

    .venv/bin/python benchmarks/packed_backward.py

An LSTM 128 over a batch of 64 sequences of unequal lengths (within 15% of the longest, as in a
length-bucketed batch), forward and backward, one thread: packed (``pack_padded_sequence``) against
the padded batch unpacked (the model then reads each text's state at its last token, which equals
the packed final state for a forward RNN). Medians of 3. Writes benchmarks/results/packed_backward.md.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

RESULTS = Path(__file__).resolve().parent / "results"


def seconds(rnn: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor, packed: bool) -> float:
    times = []
    for _ in range(3):
        inputs = x.detach().requires_grad_(True)
        start = time.perf_counter()
        if packed:
            _, (hidden, _) = rnn(pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False))
            last = hidden[-1]
        else:
            output, _ = rnn(inputs)
            last = output[torch.arange(len(lengths)), lengths - 1]
        last.sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rnn = nn.LSTM(128, 128, batch_first=True)
    lines = ["LSTM 128, batch of 64, lengths within 15% of the longest, forward + backward, one CPU thread, "
             f"torch {torch.__version__}, medians of 3.", "",
             "| longest | packed s | unpacked s | packed / unpacked |", "|---|---|---|---|"]
    for length in (50, 100, 200, 400):
        lengths = torch.randint(int(length * 0.85), length + 1, (64,))
        lengths[0] = length
        x = torch.randn(64, length, 128)
        packed, unpacked = seconds(rnn, x, lengths, True), seconds(rnn, x, lengths, False)
        lines.append(f"| {length} | {packed:.2f} | {unpacked:.2f} | {packed / unpacked:.1f}x |")
        print(lines[-1], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "packed_backward.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
