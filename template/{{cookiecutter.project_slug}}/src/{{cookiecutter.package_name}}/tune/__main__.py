"""``python -m {{ cookiecutter.package_name }}.tune worker ...``: one worker process of a study (started by ``tune``)."""

import argparse
from pathlib import Path

from .command import work


def _main() -> None:
    parser = argparse.ArgumentParser(prog="{{ cookiecutter.package_name }}.tune")
    parser.add_argument("role", choices=["worker"])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    options = parser.parse_args()
    try:
        work(options.storage, options.study, Path(options.folder), options.worker, options.threads)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    _main()
