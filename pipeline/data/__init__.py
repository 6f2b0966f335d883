"""Data preparation: a source URI -> a prepared Arrow dataset on disk with its metadata.

A prepared directory holds ``dataset/`` (a ``datasets.DatasetDict`` with ``train`` and ``test``,
saved with ``save_to_disk``) and ``meta.json`` (:class:`DataMeta`). :func:`open_split` returns a
split's images as a zero-copy (N, D) view of the memory-mapped Arrow file.
"""

from pipeline.data.meta import DataMeta, DataShape, PreparedData, load_prepared
from pipeline.data.stage import prepare
from pipeline.data.store import open_split

__all__ = ["DataMeta", "DataShape", "PreparedData", "load_prepared", "open_split", "prepare"]
