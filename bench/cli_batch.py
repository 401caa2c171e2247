"""Run several ``hygie`` commands in one Python process.

Tests and benchmarks set up many servers, each with ``hygie init`` and one ``hygie user add``
per account. As separate processes every command pays a second of imports; here they share
one interpreter. Standard input is a JSON list of ``{"args": [...], "input": "..."}``; the
commands run in order and the first failure stops the batch with its output on stderr and
exit code 1.

    python -m bench.cli_batch < jobs.json
"""

from __future__ import annotations

import json
import sys
import traceback

from click.testing import CliRunner

from server.cli.main import main as hygie


def run(jobs: list[dict[str, object]]) -> int:
    runner = CliRunner()
    for job in jobs:
        args = [str(a) for a in job["args"]]  # type: ignore[attr-defined]
        text = job.get("input")
        result = runner.invoke(hygie, args, input=text if isinstance(text, str) else None)
        if result.exit_code != 0:
            sys.stderr.write(f"hygie {' '.join(args)} exited {result.exit_code}\n{result.output}")
            if result.exc_info is not None and not isinstance(result.exception, SystemExit):
                sys.stderr.write("".join(traceback.format_exception(*result.exc_info)))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(json.load(sys.stdin)))
