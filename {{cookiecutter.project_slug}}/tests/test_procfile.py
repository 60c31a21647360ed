"""tools/procfile.py, which starts the Procfile's processes for the tests and the benchmark, cleans up after itself."""

import subprocess
import sys
from pathlib import Path

from tools.procfile import PROJECT_DIR


def test_a_process_output_file_is_removed_when_the_interpreter_that_made_it_exits():
    code = (
        "from tools.procfile import ProcfileProcess; process = ProcfileProcess('worker'); "
        "assert process.log_path.exists(); print(process.log_path)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    log = Path(result.stdout.strip())
    assert log.name.startswith("worker-")
    assert not log.exists(), f"{log} outlived the interpreter that made it"
