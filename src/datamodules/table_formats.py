"""The header tables of the data sets configured in ``conf/data`` (lentiMPRA, DeepSTARR), for prediction inputs.

A data set whose ``source.reader`` is :func:`src.datamodules.readers.read_table` names its sequence
column and its id column there (``seq`` / ``seq_id`` for lentiMPRA, ``Sequence`` / ``ID`` for
DeepSTARR). :func:`src.datamodules.readers.read_sequences` reads a prediction input whose header
holds one of these sequence columns with that same reader, so ``predict.py`` takes the data set's
own files and their ids decide the orientation flag, as in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

DATA_CONF = Path(__file__).resolve().parents[2] / "conf" / "data"
TABLE_READER = "src.datamodules.readers.read_table"


@dataclass(frozen=True)
class TableFormat:
    """One data set's table: the columns prediction needs (its targets are not read)."""

    name: str
    sequence_column: str
    id_column: str | None = None
    delimiter: str = "\t"


def data_set_tables(folder: str | Path = DATA_CONF) -> list[TableFormat]:
    """The :class:`TableFormat` of every data set config in ``folder`` read by ``read_table`` (by file name)."""
    formats = []
    for path in sorted(Path(folder).glob("*.yaml")):
        reader = OmegaConf.select(OmegaConf.load(path), "source.reader")
        if reader is None or reader.get("_target_") != TABLE_READER:
            continue
        # the column names are plain strings in the config: read them without resolving the rest
        formats.append(
            TableFormat(
                name=path.stem,
                sequence_column=str(reader.sequence_column),
                id_column=None if reader.get("id_column") is None else str(reader.id_column),
                delimiter=str(reader.get("delimiter", "\t")),
            )
        )
    return formats
