"""The outbox as the powered-off disk holds it: copied out of the ext4 image with debugfs.

    python tests/system/outbox_at_rest.py DISK OUT.json [BEFORE.json]

Reads /var/lib/touchpoint/edge.db (and a -wal/-shm, if the edge left them) from the image without
mounting it, and writes what the second boot checks: the counters, whether the waiting events are
exactly seq acked+1..last_seq, SQLite's integrity_check, and whether a WAL was left behind (a
clean close checkpoints and deletes it). BEFORE.json is the guest's note from just before the
poweroff, copied in as ``before_poweroff``.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

OUTBOX = "/var/lib/touchpoint/edge.db"


def dump(disk: str, path: str, target: Path) -> bool:
    """Copy one file out of the image; False when it is not there."""
    listed = subprocess.run(["debugfs", "-R", f"stat {path}", disk], capture_output=True, text=True, check=False)
    if "Inode:" not in listed.stdout:
        return False
    subprocess.run(["debugfs", "-R", f"dump {path} {target}", disk], capture_output=True, check=True)
    return target.exists()


def main(disk: str, out: str, before: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "edge.db"
        assert dump(disk, OUTBOX, copy), f"{OUTBOX} is not on the disk"
        wal = dump(disk, OUTBOX + "-wal", Path(tmp) / "edge.db-wal")
        dump(disk, OUTBOX + "-shm", Path(tmp) / "edge.db-shm")
        db = sqlite3.connect(copy)
        (integrity,) = db.execute("PRAGMA integrity_check").fetchone()
        seq, acked, dropped = db.execute("SELECT seq, acked, dropped FROM outbox_counters").fetchone()
        rows = [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]
        db.close()
    found = {
        "last_seq": seq,
        "acked": acked,
        "dropped": dropped,
        "rows": len(rows),
        "contiguous": rows == list(range(acked + 1, seq + 1)),
        "integrity": integrity,
        "wal_left": wal,
        "before_poweroff": json.loads(Path(before).read_text()).get("before_poweroff") if before else None,
    }
    Path(out).write_text(json.dumps(found, indent=1))
    print(f"outbox at rest: {json.dumps(found)}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
