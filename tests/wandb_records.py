"""Reading the records of an offline W&B run (`run-*.wandb`) without the network or a datastore API.

The file is a 7-byte header followed by LevelDB-log-format blocks of 32768 bytes. Each chunk starts with a
7-byte header ``<IHB`` (crc32, length, type) where type 1 = FULL, 2 = FIRST, 3 = MIDDLE, 4 = LAST; a block
with fewer than 7 bytes left, or a zero-type zero-length chunk, is padding up to the next block.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

FILE_HEADER = 7
BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(data: bytes) -> Iterator[bytes]:
    """The payloads of the records in the bytes of a .wandb file."""
    pos = FILE_HEADER
    pending: list[bytes] = []
    while pos < len(data):
        left_in_block = BLOCK - (pos % BLOCK)
        if left_in_block < CHUNK_HEADER:
            pos += left_in_block
            continue
        if pos + CHUNK_HEADER > len(data):
            break
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + CHUNK_HEADER])
        if kind == 0 and length == 0:
            pos += left_in_block
            continue
        start = pos + CHUNK_HEADER
        chunk = data[start:start + length]
        pos = start + length
        if kind == FULL:
            yield chunk
            pending = []
        elif kind == FIRST:
            pending = [chunk]
        elif kind == MIDDLE:
            pending.append(chunk)
        elif kind == LAST:
            pending.append(chunk)
            yield b"".join(pending)
            pending = []
        else:
            raise ValueError(f"unknown chunk type {kind} at offset {pos - length - CHUNK_HEADER}")


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    records = []
    for payload in raw_records(Path(path).read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        records.append(record)
    return records


def summarize(path: Path) -> dict[str, Any]:
    """The logged config (merged updates), history rows and run metadata of one .wandb file."""
    config: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    run: dict[str, str] = {}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            for item in record.config.update:
                key = item.key or "/".join(item.nested_key)
                config[key] = json.loads(item.value_json)
        elif kind == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            history.append(row)
        elif kind == "run":
            run = {"run_id": record.run.run_id, "run_group": record.run.run_group,
                   "job_type": record.run.job_type}
    return {"config": config, "history": history, "run": run}
