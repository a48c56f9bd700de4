"""The reliability table: run the generated project's fault suite and write its outcomes.

    .venv/bin/python benchmarks/faults.py            # bake, run tests/test_faults.py, write the table
    .venv/bin/python benchmarks/faults.py --render   # only rewrite the table from results/faults.jsonl

Bakes the template with default answers and runs the project's own fault suite
(``pytest -m faults tests/test_faults.py``: kill -9, SIGTERM, Ctrl+C, DDP, W&B without network,
a full disk, a corrupt checkpoint) with ``FAULTS_REPORT`` set, so each case writes its outcome.
Writes benchmarks/results/faults.jsonl and faults.md and puts the table into README.md between
the ``faults:start`` and ``faults:end`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- faults:start -->", "<!-- faults:end -->"


def run_suite(report: Path) -> int:
    report.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=tmp))
        env = {**os.environ, "FAULTS_REPORT": str(report), "PYTHONPATH": str(project / "src")}
        command = [sys.executable, "-m", "pytest", "-m", "faults", "-q", "-p", "no:cacheprovider", "tests/test_faults.py"]
        return subprocess.run(command, cwd=project, env=env).returncode


def _exit(code: int) -> str:
    return {-9: "killed (-9)", 143: "143", 1: "1", 2: "2", 0: "0"}.get(code, str(code))


def _diff(value: float | None) -> str:
    return "—" if value is None else ("0" if value == 0 else f"{value:.1e}")


def render(rows: list[dict]) -> str:
    lines = [
        "| case | exit status | then | logged scalars compared (lost to kill -9) | max abs diff: scalars / weights | outcome |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "max_scalar_diff" in row:
            then = (f"`--ckpt_path last` finds no checkpoint and starts a new run: exit {_exit(row['resumed_exit'])}"
                    if row.get("fresh") else
                    f"`--ckpt_path last`: exit {_exit(row['resumed_exit'])}, same run folder, {row['segments']} W&B "
                    "segments of one run id")
            if "signal_to_exit_s" in row:
                then = f"{row['signal_to_exit_s']} s from SIGTERM to exit; " + then
            compared = f"{row['scalars']} ({row['scalars_lost']})"
            diffs = f"{_diff(row['max_scalar_diff'])} / {_diff(row['max_weight_diff'])}"
        else:
            if "lr" in row:
                then = (f"one run folder, one W&B run, word vectors trained once, each checkpoint written once; "
                        f"every rank at lr {row['lr']:.3g}, {row['steps']} steps, the same weights")
            elif "fit_s" in row:
                then = f"'could not reach W&B', then offline; the whole 1-epoch fit took {row['fit_s']} s"
            else:
                then = row.get("message", "").replace("|", "\\|")
            compared, diffs = "—", "—"
        outcome = "✅ as promised" if row["passed"] else "❌"
        lines.append(f"| {row['case']} | {_exit(row['exit']) if row['exit'] != '-' else '—'} | {then} | {compared} | "
                     f"{diffs} | {outcome} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", action="store_true", help="rewrite the table from results/faults.jsonl only")
    args = parser.parse_args()
    report = RESULTS / "faults.jsonl"
    code = 0 if args.render else run_suite(report)
    rows = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines() if line.strip()]
    table = render(rows)
    command = ".venv/bin/python benchmarks/faults.py"
    (RESULTS / "faults.md").write_text(f"Fault suite of the generated project (`{command}`).\n\n{table}\n", encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if START in readme and END in readme:
        before, rest = readme.split(START, 1)
        _, after = rest.split(END, 1)
        (ROOT / "README.md").write_text(f"{before}{START}\n{table}\n{END}{after}", encoding="utf-8")
    print(table)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
