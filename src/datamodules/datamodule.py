"""The LightningDataModule: read + validate once, encode once, build batches vectorised.

Data flow: a *source* (``conf/data``) yields validated :class:`Records` (one file, or
one per split for a folder), whose sequences are held once as compact uint8 codes
(:class:`SequenceStore`, memory-mapped from the binary cache for large DREAM files),
split as the data set publishes it (folder, split column, fold column) or by sequence
hash (see :mod:`src.datamodules.splits`). The
*processing* (``conf/processing``) checks its length policy on every read up front;
batches are built by :meth:`EncodedDataset.__getitems__` from index tensors: the
processing's per-sequence step, one-hot, flags and augmentations are array operations
on the whole batch.

The epoch stream is a pure function of ``(seed, epoch)`` (see
:class:`EpochBatchSampler`), so a resumed run sees the same batches as an
uninterrupted one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from src.datamodules.mapping import release_pages
from src.datamodules.processing.base import Processing
from src.datamodules.readers import Records, report_duplicates
from src.datamodules.splits import SPLITS, SplitData, check_sizes, column_assignment, fold_assignment, resolve_mode
from src.datamodules.store import SequenceStore, all_n_rows
from src.datamodules.target_range import declared_range, rows_in_range
from src.errors import ConfigError, DataError, LengthPolicyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchRequest:
    """What the batch sampler hands to the dataset: item indices and a batch seed."""

    indices: np.ndarray
    seed: int


def _batch_seed(seed: int, epoch: int, step: int) -> int:
    # splitmix-style mixing keeps neighbouring (epoch, step) seeds unrelated
    return int(np.random.SeedSequence([seed, epoch, step]).generate_state(1)[0])


class EpochBatchSampler(Sampler[BatchRequest]):
    """Batches of a stream of seeded permutations, ``steps_per_epoch`` per epoch.

    The stream concatenates permutations ``perm(seed, pass)`` of the items; epoch
    ``e`` takes batches ``[e * S, (e + 1) * S)`` of it, so epochs never drop or
    repeat steps and every epoch is reproducible on its own; a run resumed inside an
    epoch starts at the batch it reached (:meth:`resume_at`). Without shuffling the
    items are taken in order once (evaluation). In distributed runs each training
    rank takes every ``world_size``-th batch and each evaluation rank every
    ``world_size``-th item, padded so that all ranks run as many batches.
    """

    def __init__(
        self,
        n_items: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        steps_per_epoch: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if n_items < 1:
            raise ValueError("cannot sample from an empty split")
        self.n_items = n_items
        self.batch_size = max(1, min(int(batch_size), n_items)) if shuffle else max(1, int(batch_size))
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        if shuffle:
            per_pass = n_items // self.batch_size
            self.steps = int(steps_per_epoch) if steps_per_epoch else max(per_pass // world_size, 1)
        else:
            per_rank = math.ceil(n_items / world_size)  # padded so that every rank runs as many batches
            self.steps = math.ceil(per_rank / self.batch_size)
        self.epoch = 0
        self._resume: Callable[[], int] | None = None  # a resumed run's position in its epoch (resume_at)
        self._pass: tuple[int, np.ndarray] | None = None  # the permutation in use, kept for its pass

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, position: Callable[[], int]) -> None:
        """Start the next iteration at batch ``position()`` of the epoch, asked when that iteration starts.

        A run resumed inside an epoch skips the batches its checkpoint had trained (the trainer knows how
        many only once its loops are restored, after the loader was made).
        """
        self._resume = position

    def __len__(self) -> int:
        return self.steps

    def _permutation(self, pass_index: int) -> np.ndarray:
        """``perm(seed, pass)``, made once per pass (on 12M items a permutation takes about a second).

        Shuffled as int32 when the items allow it (half the memory): the shuffle draws the same
        random numbers whatever the dtype, so the order equals ``permutation(n_items)``.
        """
        if self._pass is None or self._pass[0] != pass_index:
            items = np.arange(self.n_items, dtype=np.int32 if self.n_items < 2**31 else np.int64)
            self._pass = None  # drop the previous pass's permutation before making the next
            np.random.default_rng([self.seed, pass_index]).shuffle(items)
            self._pass = (pass_index, items)
        return self._pass[1]

    def __iter__(self) -> Iterator[BatchRequest]:
        if not self.shuffle:
            # each rank takes items rank::world_size; with several ranks the list is padded (by wrapping
            # to its start) so that all ranks run the same number of batches, as collective ops require
            per_rank = math.ceil(self.n_items / self.world_size)
            items = np.arange(per_rank * self.world_size) % self.n_items
            mine = items[self.rank :: self.world_size]
            for start in range(0, per_rank, self.batch_size):
                yield BatchRequest(mine[start : start + self.batch_size], 0)
            return
        per_pass = self.n_items // self.batch_size  # full batches per permutation (drop_last)
        start = 0
        if self._resume is not None:  # the first iteration of a resumed run
            start, self._resume = max(0, min(int(self._resume()), self.steps)), None
        for step in range(start, self.steps):
            global_batch = (self.epoch * self.steps + step) * self.world_size + self.rank
            pass_index, within = divmod(global_batch, per_pass)
            perm = self._permutation(pass_index)
            idx = perm[within * self.batch_size : (within + 1) * self.batch_size]
            yield BatchRequest(idx, _batch_seed(self.seed, self.epoch, step * self.world_size + self.rank))


def row_index(mask: np.ndarray) -> np.ndarray:
    """The rows where ``mask`` is true, as int32 when the store allows it (half the memory of int64)."""
    return np.flatnonzero(mask).astype(np.int32 if len(mask) < 2**31 else np.int64)


def folds_of(hashes: np.ndarray, n_folds: int, chunk: int = 1 << 20) -> np.ndarray:
    """Fold of every read (``hash mod n_folds``, int8), computed in chunks to bound the temporaries."""
    folds = np.empty(len(hashes), dtype=np.int8 if n_folds <= 127 else np.int64)
    for lo in range(0, len(hashes), chunk):
        folds[lo : lo + chunk] = hashes[lo : lo + chunk] % np.uint64(n_folds)
    return folds


class EncodedDataset(Dataset):
    """One split: rows of a :class:`SequenceStore`; ``__getitems__`` prepares and builds a whole batch at once.

    The processing's per-sequence step (:meth:`Processing.prepare`) runs on the gathered rows of each
    batch, so nothing is held per read beyond the store (which may be memory-mapped) and the split's
    row indices and targets. Views (autosome's reverse complement) are item indices, not copies.
    """

    def __init__(
        self,
        store: SequenceStore,
        rows: np.ndarray,
        targets: np.ndarray,
        processing: Processing,
        train: bool,
        extras: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.store = store
        self.rows = np.asarray(rows, dtype=np.int32 if len(store) < 2**31 else np.int64)
        # per-read arrays from the ids (mpra's orientation flag), indexed like the store
        self.extras = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in (extras or {}).items()}
        self.targets = torch.from_numpy(np.ascontiguousarray(targets[self.rows], dtype=np.float32))
        self.processing = processing
        self.train = train
        self.n_sequences = len(self.rows)
        self.views = processing.train_views if train else 1

    def __len__(self) -> int:
        return self.n_sequences * self.views

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.__getitems__(BatchRequest(np.array([index]), 0))

    def __getitems__(self, request: BatchRequest) -> dict[str, Tensor]:
        idx = torch.from_numpy(np.asarray(request.indices, dtype=np.int64))
        seq, view = idx % self.n_sequences, idx // self.n_sequences
        generator = torch.Generator().manual_seed(request.seed) if self.train else None
        codes, lengths = self.store.rows(self.rows[seq.numpy()])
        fields = {k: torch.from_numpy(v) for k, v in self.processing.prepare(codes, lengths).items()}
        fields.update({k: v[self.rows[seq.numpy()]] for k, v in self.extras.items()})
        return self.processing.make_batch(fields, self.targets[seq], view, self.train, generator)


def report_all_n(records: Records, store: SequenceStore, shown: int = 5) -> int:
    """Warn, with its line, about each read made only of N (the first ``shown``, then a count); returns the count.

    A cached DREAM file found these rows when its entry was built (``records.all_n``); other sources
    are scanned here.
    """
    if records.all_n is not None:
        count, rows = records.all_n
    else:
        rows = all_n_rows(store)
        count = rows.size
    for row in rows[:shown]:
        length = int(store.lengths[row])
        line = int(records.lines[row])
        log.warning("%s:%d: read of %d nt is only N (no sequence information)", records.path, line, length)
    if count > shown:
        log.warning("%s: %d reads in all are only N", records.path, count)
    return int(count)


def _identity(batch: dict[str, Tensor]) -> dict[str, Tensor]:
    return batch


class PrixFixeDataModule(L.LightningDataModule):
    """Reads a source, splits it (published split or sequence hash), prepares with the team processing.

    ``split``/``test_fold``/``fold_val`` are ``data.split``/``data.test_fold``/``data.val_fold``;
    ``n_folds``/``val_fold`` define the hash split used when the data publishes none.
    ``target_range``/``out_of_range`` are ``data.target_range``/``data.out_of_range`` (see :mod:`.target_range`).
    """

    def __init__(
        self,
        source: Callable[[], SplitData],
        processing: Processing,
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        steps_per_epoch: int | None = None,
        n_folds: int = 10,
        val_fold: int = 0,
        num_workers: int = 0,
        seed: int = 0,
        val_max_items: int | None = None,
        val_seed: int = 0,
        split: str = "auto",
        test_fold: int | None = None,
        fold_val: int | None = None,
        target_range: Sequence[float] | None = None,
        out_of_range: str = "error",
    ) -> None:
        super().__init__()
        self.declared_range = target_range
        self.target_range: tuple[float, float] | None = None  # checked in setup (instantiate would wrap an error)
        self.out_of_range = out_of_range
        self.source = source
        self.processing = processing
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or max(self.batch_size, 256))
        self.steps_per_epoch = steps_per_epoch
        self.n_folds = int(n_folds)
        self.val_fold = int(val_fold)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        if val_max_items is not None and int(val_max_items) < 1:
            raise ConfigError(
                f"datamodule.val_max_items must be a positive number of reads or null (got {val_max_items})"
            )
        self.val_max_items = None if val_max_items is None else int(val_max_items)
        self.val_seed = int(val_seed)
        self.split = str(split)
        self.test_fold = None if test_fold is None else int(test_fold)
        self.fold_val = None if fold_val is None else int(fold_val)
        self.split_form: str | None = None
        self.records: Records | None = None
        self.parts: dict[str, tuple[Records, np.ndarray]] = {}  # split -> (records of its file, rows)
        self.train_set: EncodedDataset | None = None
        self.val_set: EncodedDataset | None = None
        self.test_set: EncodedDataset | None = None
        self.folds: np.ndarray | None = None

    def _store(self, records: Records) -> tuple[SequenceStore, np.ndarray]:
        """The records' code store and the rows the length policy keeps (duplicates and all-N reads reported)."""
        report_duplicates(records)
        store = records.store if records.store is not None else SequenceStore.from_sequences(records.sequences)
        report_all_n(records, store)
        in_range = rows_in_range(records, self.target_range, self.out_of_range)  # data.target_range
        return store, self._check_lengths(records, store) & in_range

    def _assign(self, records: Records, store: SequenceStore) -> np.ndarray:
        """Split index per read of one file (0 train, 1 val, 2 test) in the resolved form."""
        if self.split_form == "column":
            return column_assignment(records)
        if self.split_form == "fold":
            return fold_assignment(records, self.test_fold, self.fold_val)
        self.folds = folds_of(store.hashes, self.n_folds)
        release_pages(store.hashes)
        val = self.folds == self.val_fold
        if val.all() or not val.any():
            raise DataError(
                f"the hash split leaves an empty {'training' if val.all() else 'validation'} set "
                f"({len(records)} sequences, {self.n_folds} folds)",
                records.path,
            )
        return val.astype(np.int64)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.target_range = declared_range(self.declared_range, self.out_of_range)  # a bad value: before reading
        data = self.source()
        self.split_form = resolve_mode(data, self.split)
        stores: dict[str, SequenceStore] = {}
        if isinstance(data, dict):
            for name, records in data.items():
                stores[name], keep = self._store(records)
                self.parts[name] = (records, row_index(keep))
        else:
            store, keep = self._store(data)
            which = self._assign(data, store)
            for index, name in enumerate(SPLITS):
                if ((which == index) & keep).any():
                    stores[name] = store
                    self.parts[name] = (data, row_index((which == index) & keep))
        first = next(iter(self.parts.values()))[0]
        check_sizes({k: len(rows) for k, (_, rows) in self.parts.items()}, self.split_form, first.path)
        records, val_rows = self.parts["val"]
        if self.val_max_items is not None and len(val_rows) > self.val_max_items:
            # a seeded subset that depends only on the split, never on the processing or the run's seed
            pick = np.random.default_rng(self.val_seed).choice(len(val_rows), self.val_max_items, replace=False)
            self.parts["val"] = (records, val_rows[np.sort(pick)])

        def dataset(name: str, train: bool) -> EncodedDataset:
            records, rows = self.parts[name]
            extras = self.processing.id_fields(records.ids, len(records))
            return EncodedDataset(stores[name], rows, records.targets, self.processing, train, extras)

        self.records = self.parts["train"][0]
        self.train_set = dataset("train", True)
        self.val_set = dataset("val", False)
        self.test_set = dataset("test", False) if "test" in self.parts else None
        for records, _ in self.parts.values():
            release_pages(records.targets)  # materialised per split above
        log.info(
            "data %s: %d train / %d validation / %s test sequences (%s split), processing %s",
            self.records.path,
            self.train_set.n_sequences,
            self.val_set.n_sequences,
            self.test_set.n_sequences if self.test_set is not None else "no",
            self.split_form,
            self.processing.describe(),
        )

    @property
    def split_records(self) -> dict[str, Records]:
        """The records of every split (copies of their rows; made on demand)."""
        return {name: records.subset(rows) for name, (records, rows) in self.parts.items()}

    def _check_lengths(self, records: Records, store: SequenceStore) -> np.ndarray:
        """Apply the processing's length policy to every read; returns the rows it keeps (bool).

        ``on_long`` / ``on_short`` = error stops at the first offending line; trimmed, padded and
        dropped reads are counted in one log line.
        """
        try:
            decision = self.processing.length_policy(store.lengths)
        except LengthPolicyError as err:
            raise DataError(err.problem, records.path, int(records.lines[err.row])) from None
        self.processing.report_lengths(decision, records.path)
        if not decision.keep.any():
            raise DataError(f"the length policy of processing {self.processing.name} drops every read", records.path)
        return decision.keep

    @property
    def n_targets(self) -> int:
        assert self.records is not None, "call setup() first"
        return self.records.n_targets

    @property
    def train_targets(self) -> Tensor:
        assert self.train_set is not None, "call setup() first"
        return self.train_set.targets

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _loader(self, dataset: EncodedDataset, sampler: EpochBatchSampler) -> DataLoader:
        # a private generator: creating the loader's iterator then draws nothing from the global torch
        # stream, whose per-epoch reseeding (dropout) must not depend on when Lightning makes iterators
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=_identity,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        rank, world = self._rank()
        sampler = EpochBatchSampler(
            len(self.train_set), self.batch_size, True, self.seed, self.steps_per_epoch, rank, world
        )
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        rank, world = self._rank()
        sampler = EpochBatchSampler(len(self.val_set), self.eval_batch_size, False, rank=rank, world_size=world)
        return self._loader(self.val_set, sampler)

    def test_dataloader(self) -> DataLoader:
        """The published test split in order (one process); absent splits are a ConfigError."""
        if self.test_set is None:
            raise ConfigError(f"the data has no test split (split form: {self.split_form})")
        sampler = EpochBatchSampler(len(self.test_set), self.eval_batch_size, False)
        return self._loader(self.test_set, sampler)
