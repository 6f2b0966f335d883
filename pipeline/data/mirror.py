"""Prepared data in ``output.storage``, and each node's cache of it.

The driver prepares data locally (``pipeline.data.stage``) and :func:`publish` copies the
directory to ``<storage>/data/<fingerprint>/``, ``meta.json`` last, so a stored copy with its meta
file is complete. A training worker (or a stage on a machine that never prepared the data) calls
:func:`fetch`, which copies it once per node into :func:`pipeline.storage.node_cache_root`
keyed by the same fingerprint and memory-maps it from there; no node ever opens a path of the
driver's.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.meta import DATASET, META, PreparedData, is_prepared, load_prepared
from pipeline.errors import DataError
from pipeline.storage import Store, node_cache_root


def publish(prepared: PreparedData, store: Store, name: str) -> None:
    """Copy ``prepared`` to ``name`` in ``store`` unless a complete copy is there already."""
    if store.exists(f"{name}/{META}"):
        return
    local = Path(prepared.path)
    if not is_prepared(local):
        raise DataError(f"data: {local} is not a prepared dataset (no {META}) and {store}/{name} holds no copy; "
                        f"prepare the data again (boltzgan prepare PRESET)")
    store.upload(local / DATASET, f"{name}/{DATASET}")
    store.upload(local / META, f"{name}/{META}")  # last: marks the copy complete


def fetch(store: Store, name: str, fingerprint: str, cache_root: Path | None = None) -> PreparedData:
    """The stored data ``name`` from this node's cache (copied there first when missing)."""
    local = (cache_root or node_cache_root()) / fingerprint
    if not is_prepared(local):
        if not store.exists(f"{name}/{META}"):
            raise DataError(f"data: {store}/{name} holds no complete prepared dataset (no {META}); train the run "
                            f"again so that its data is copied to output.storage")
        store.download_dir(name, local)
    data = load_prepared(local)
    if data.meta.fingerprint != fingerprint:
        raise DataError(f"data: the node cache {local} holds data of fingerprint {data.meta.fingerprint}, not "
                        f"{fingerprint}; delete {local} (a cache) and retry")
    return data
