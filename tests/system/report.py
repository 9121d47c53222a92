"""Print the system check's results (the guest's result-*.json) and say whether it passed.

    python tests/system/report.py WORK_DIR PHASE...

One line per check, then ``N passed, N failed``; exits 1 when a check failed or a phase wrote no
result (the guest did not get that far).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(work: Path, phases: list[str]) -> int:
    passed = failed = 0
    for phase in phases:
        path = work / f"result-{phase}.json"
        if not path.exists():
            print(f"FAIL [{phase}] no result: the guest did not finish this boot (see the console log)")
            failed += 1
            continue
        for result in json.loads(path.read_text())["checks"]:
            ok = result["ok"]
            passed, failed = passed + ok, failed + (not ok)
            detail = result["detail"] if ok else result["detail"].replace("\n", "\n      ")
            print(f"{'PASS' if ok else 'FAIL'} [{phase}] {result['check']} ({result['seconds']} s)\n      {detail}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
