"""One-line notices through ``logging``, printed on rank zero only.

Expected conditions (a flagged LR reading, a metric a validation did not log, a low vector
coverage) are not Python warnings: those print a file path and a line of source, and pytest
collects them into a summary that reads like failures. They go to the ``logging`` logger of
the module that has something to say; the generated CLI prints that package's records as one
line each (``warning: `` before warnings), and tests read them with ``caplog``.
"""

from __future__ import annotations

import logging

from lightning.pytorch.utilities.rank_zero import rank_zero_only


@rank_zero_only
def notice(name: str, message: str, level: int = logging.WARNING) -> None:
    """Log ``message`` once (rank zero) to the logger ``name``, normally the caller's ``__name__``."""
    logging.getLogger(name).log(level, message)


__all__ = ["notice"]
