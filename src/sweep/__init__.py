"""Sweeps over every first/core/final combination: the job ledger and the summary."""

from src.sweep.ledger import (
    LEDGER_NAME,
    STATUSES,
    LedgerCorruptError,
    append_record,
    is_done,
    job_key,
    latest_by_key,
    make_record,
    peak_memory_mb,
    read_ledger,
)

__all__ = [
    "LEDGER_NAME",
    "STATUSES",
    "LedgerCorruptError",
    "append_record",
    "is_done",
    "job_key",
    "latest_by_key",
    "make_record",
    "peak_memory_mb",
    "read_ledger",
]
