"""Check the answers again before anything is written; on a bad answer say what to type instead.

The check itself lives in ``liandan_ext.py`` and normally runs earlier, while cookiecutter renders
the answers (``__checked`` in ``cookiecutter.json``), before the project folder exists. This hook
catches contexts that skip that rendering, e.g. ``cookiecutter --replay-file`` with a replay that
already holds ``__checked``: by the time it runs the project folder exists, and cookiecutter
removes it again when the hook fails.
"""

import sys

ERRORS = {{ liandan_answer_errors(cookiecutter) | tojson }}


def main() -> int:
    for message in ERRORS:
        print(f"ERROR: {message}", file=sys.stderr)
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
