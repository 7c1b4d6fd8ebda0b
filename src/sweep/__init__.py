"""Sweeps over every first/core/final combination: the job ledger (:mod:`.ledger`), one job's
bookkeeping (:mod:`.job`) and the summary (:mod:`.summarize`)."""
