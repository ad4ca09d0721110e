"""W&B's offline run files read back (wandb 0.31 ships no Python reader of them): each
``wandb/offline-run-<time>-<id>/run-<id>.wandb`` is a LevelDB-style log of protobuf ``Record``s (a 7-byte header
``:W&B``, magic, version; then 32 KiB blocks of chunks: crc32 of type+data, length, type FULL/FIRST/MIDDLE/LAST), each
parsed with ``wandb.proto.wandb_internal_pb2.Record``. ``read_runs`` merges a run's segments in order, as ``wandb sync``
uploads a resumed run. ``wandb-core`` writes a finished run's records a few milliseconds after ``run.finish()``
returns: ``read_runs`` waits (at most 30 s) until every file holds its exit record."""
from __future__ import annotations

import json
import re
import struct
import time
import zlib
from pathlib import Path

__all__ = ["finished_records", "of", "read_runs", "records", "wandb_files"]


def records(path: Path):
    """Every protobuf Record of a ``.wandb`` file: a 7-byte header (``:W&B``, magic, version), then 32 KiB blocks
    of chunks (crc32 of type+data, length, type FULL/FIRST/MIDDLE/LAST), checked."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, pending, block = 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header: zero padding
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if (kind == 0 and length == 0) or pos + 7 + length > len(data):  # the end, or a chunk still being written
            break
        payload = data[pos + 7:pos + 7 + length]
        assert zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, (path, pos)
        pos += 7 + length
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def _items(items) -> dict:
    return {item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in items}


def _segment_order(folder: Path):
    match = re.match(r".*?run-(\d{8}_\d{6})-.*?(?:-(\d+))?$", folder.name)
    return (match.group(1), int(match.group(2) or 0)) if match else (folder.name, 0)


def finished_records(path: Path, timeout: float = 30.0) -> list:
    """The records of a finished run's file, once ``wandb-core`` has written its exit record."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def read_runs(wandb_dir: Path) -> dict[str, dict]:
    """Every W&B run under ``wandb_dir`` (``RUNS/wandb``), its segments merged in order as ``wandb sync`` uploads a
    resumed run: config and summary updated key by key, history appended, files collected."""
    runs: dict[str, dict] = {}
    files = sorted(wandb_dir.glob("*/run-*.wandb"), key=lambda f: _segment_order(f.parent))
    for path in files:
        run = None
        for record in finished_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                r = record.run
                run = runs.setdefault(r.run_id, {"id": r.run_id, "config": {}, "summary": {}, "history": [],
                                                 "files": set(), "exit": [], "segments": 0})
                run.update(project=r.project, group=r.run_group, job_type=r.job_type, name=r.display_name,
                           tags=list(r.tags))
                run["segments"] += 1
                run["config"].update(_items(r.config.update))
            elif run is None:
                continue
            elif kind == "config":
                run["config"].update(_items(record.config.update))
            elif kind == "summary":
                run["summary"].update(_items(record.summary.update))
            elif kind == "history":
                row = _items(record.history.item)
                row.setdefault("_step", record.history.step.num)
                run["history"].append(row)
            elif kind == "files":
                run["files"].update(f.path for f in record.files.files)
            elif kind == "exit":
                run["exit"].append(record.exit.exit_code)
    for run in runs.values():
        run["config"] = {k: (v.get("value") if isinstance(v, dict) and "value" in v else v)
                         for k, v in run["config"].items() if not k.startswith("_")}
    return runs


def of(runs: dict, job_type: str) -> list[dict]:
    return sorted((r for r in runs.values() if r["job_type"] == job_type), key=lambda r: r["name"])


def wandb_files(folder: Path) -> list[Path]:  # one per segment
    return sorted(folder.glob("*/run-*.wandb"))
