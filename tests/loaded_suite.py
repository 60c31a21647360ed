"""Run a bake's generated suite several times in a row while busy loops keep every core loaded.

    uv run python tests/loaded_suite.py [--runs 10] [--project DIR] [--busy N]

Without --project it bakes the template's defaults into a temporary directory and builds the bake's virtualenv
with `uv sync`. One `python -c "while True: pass"` process per core (or --busy N) runs for the whole series; the
script starts them, and ends them by their pids when it stops. Each run is the generated README's `uv run pytest`;
a line per run gives its pytest summary and wall time, and the exit status is 1 if any run failed.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
ISOLATED = ("REDIS_URL", "DATABASE_URL", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
SUMMARY = re.compile(r"^=+ (?P<summary>.*\d+ (passed|failed|error).*) in [\d.]+s", re.MULTILINE)


def bake(into: Path) -> Path:
    subprocess.run(
        ["cookiecutter", "--no-input", "--output-dir", str(into), str(TEMPLATE)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    project = into / "my_project"
    subprocess.run(["uv", "sync", "--quiet"], cwd=project, check=True)
    return project


def run_suite(project: Path, log: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    with log.open("w") as out:
        # In a process group of its own: interrupted, the suite and every server and worker it started go too.
        suite = subprocess.Popen(
            ["uv", "run", "pytest", "-p", "no:cacheprovider"],
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
            # The suite starts its own Redis, uses SQLite, and runs in the bake's virtualenv, not this one's.
            env={key: value for key, value in os.environ.items() if key not in ISOLATED},
            start_new_session=True,
        )
        try:
            code = suite.wait()
        finally:
            if suite.poll() is None:
                os.killpg(suite.pid, signal.SIGKILL)
                suite.wait()
    elapsed = time.monotonic() - started
    found = SUMMARY.findall(log.read_text())
    return code, (found[-1][0] if found else "no pytest summary"), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--project", type=Path, help="a generated project with its virtualenv (default: bake one)")
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy loops (default: one per core)")
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "loaded-suite-logs")
    args = parser.parse_args()
    # SIGTERM ends the series as Ctrl-C does: through the finally blocks that stop the loops and the suite.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    with tempfile.TemporaryDirectory(prefix="loaded-suite-") as scratch:
        project = args.project.resolve() if args.project else bake(Path(scratch))
        args.logs.mkdir(parents=True, exist_ok=True)
        loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
        print(f"{args.busy} busy loops (pids {', '.join(str(loop.pid) for loop in loops)}); project {project}")
        failed = 0
        try:
            for run in range(1, args.runs + 1):
                code, summary, elapsed = run_suite(project, args.logs / f"run-{run}.log")
                failed += code != 0
                print(f"run {run}/{args.runs}: exit {code}, {summary}, {elapsed:.0f} s", flush=True)
        finally:
            for loop in loops:
                loop.kill()
                loop.wait()
        print(f"{args.runs - failed} of {args.runs} runs passed; logs in {args.logs}")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
