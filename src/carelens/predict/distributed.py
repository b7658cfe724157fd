"""Batch scoring beyond one process: `carelens predict BUNDLE SOURCE... --ray [ADDRESS] --out results.jsonl`.

Ray Data spreads the images over actors, each holding one torch-free :class:`Engine` (the bundle loaded once per
actor, one ONNX Runtime thread each); the driver writes the rows in input order, in exactly the JSON-lines format of
the single-process path, flushing each, so that a run that stops resumes from what is already written: inputs
with a row in ``--out`` are not scored again. ``--out NAME.parquet`` writes the same rows as a folder of Parquet
part files (columns input, error, row), each written whole, for tools that read Parquet.

Sources: local files, folders and manifests (each actor reads the files itself: on a cluster they must be on a
filesystem every node sees), or object-store prefixes (``s3://bucket/images/``, ``gs://...``: listed and read by
Ray Data's ``read_binary_files``, decoded by carelens's own decoder, as uploads to the service are).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carelens.bundle import load_bundle
from carelens.data import IMAGE_SUFFIXES, decode_image
from carelens.errors import ConfigError, MissingExtraError
from carelens.predict.engine import Engine, collect_inputs

__all__ = ["OBJECT_STORES", "BatchSummary", "done_inputs", "score_with_ray"]

OBJECT_STORES = ("s3://", "gs://", "gcs://", "abfs://", "az://", "hdfs://")


@dataclass(frozen=True)
class BatchSummary:
    scored: int  # rows written by this call
    skipped: int  # inputs already in the output (resumed)
    errors: int  # rows written with an error (unreadable files)


def done_inputs(out: Path) -> set[str]:
    """The inputs that already have a row in the JSON-lines file ``out``. A last line cut short by a stop is
    removed from the file (its input is scored again), so that the rows appended next start on a line of their
    own."""
    if not out.is_file():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        with out.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
    done = set()
    for line in out.read_text(encoding="utf-8").splitlines():
        try:
            done.add(json.loads(line)["input"])
        except (ValueError, KeyError, TypeError):
            continue
    return done


PART_ROWS = 256  # rows per Parquet part file: what a stop can lose at most


class _JsonLines:
    """JSON-lines output, one row per line, flushed as written: a stop loses at most the rows in flight."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: Any = None

    def done(self) -> set[str]:
        return done_inputs(self.path)

    def write(self, row: str) -> None:
        if self.stream is None:
            self.stream = self.path.open("a", encoding="utf-8")
        self.stream.write(row + "\n")
        self.stream.flush()

    def flush(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


class _ParquetParts:
    """Parquet output as a folder of part files (``part-00000.parquet`` ...), each written whole under a temporary
    name and renamed: a stop loses at most the part being written. Columns: ``input``, ``error`` and ``row`` (the
    JSON text the JSON-lines output holds)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: list[dict[str, Any]] = []

    def done(self) -> set[str]:
        import pyarrow.parquet as pq

        done: set[str] = set()
        for part in sorted(self.folder.glob("part-*.parquet")) if self.folder.is_dir() else []:
            done |= {str(x) for x in pq.read_table(part, columns=["input"]).column("input").to_pylist()}
        return done

    def write(self, row: str) -> None:
        doc = json.loads(row)
        self.rows.append({"input": doc["input"], "error": doc.get("error"), "row": row})
        if len(self.rows) >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        k = len(list(self.folder.glob("part-*.parquet")))
        tmp = self.folder / f".part-{k:05d}.parquet.tmp"
        pq.write_table(pa.Table.from_pylist(self.rows, schema=pa.schema(
            [("input", pa.string()), ("error", pa.string()), ("row", pa.string())])), tmp)
        tmp.replace(self.folder / f"part-{k:05d}.parquet")
        self.rows = []


class _Scorer:
    """A Ray actor's state: the engine, built once; rows as JSON text."""

    def __init__(self, bundle: str, batch_size: int) -> None:
        self.engine = Engine(load_bundle(bundle, threads=1), batch_size=batch_size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "bytes" in batch:  # an object store: Ray read the files
            items = zip((str(p) for p in batch["path"]), (bytes(b) for b in batch["bytes"]), strict=True)
            results = self.engine.predict_items(items, decode_image)
        else:
            results = self.engine.predict_paths([str(p) for p in batch["path"]])
        rows = [r.to_dict() for r in results]
        return {"row": np.asarray([json.dumps(r) for r in rows], dtype=object),
                "error": np.asarray([r.get("error") is not None for r in rows])}


def _dataset(ray: Any, sources: Sequence[str], done: set[str]) -> tuple[Any, int]:
    """(Ray dataset of the inputs still to score, None when nothing is left; how many were skipped as done)."""
    remote = [s for s in sources if s.startswith(OBJECT_STORES)]
    if remote and len(remote) != len(sources):
        raise ConfigError("give either object-store prefixes or local files/folders/manifests, not both")
    if remote:
        ds = ray.data.read_binary_files(remote, include_paths=True, file_extensions=[s.lstrip(".") for s in
                                                                                      IMAGE_SUFFIXES])
        if done:
            ds = ds.filter(lambda row: row["path"] not in done)
        return ds, len(done)  # not counted first: that would read every file twice
    paths = [str(p) for p in collect_inputs(list(sources))]
    todo = [p for p in paths if p not in done]
    return (ray.data.from_items([{"path": p} for p in todo]) if todo else None), len(paths) - len(todo)


def _rows(ray: Any, ds: Any, bundle: Path, workers: int, batch_size: int) -> Iterator[dict[str, Any]]:
    scored = ds.map_batches(_Scorer, fn_constructor_args=(str(bundle), batch_size), batch_size=4 * batch_size,
                            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1, batch_format="numpy")
    yield from scored.iter_rows()


def score_with_ray(bundle: str | Path, sources: Sequence[str], out: str | Path, *, address: str | None = None,
                   workers: int = 2, batch_size: int = 8, species: str | None = None,
                   progress: Any = None) -> BatchSummary:
    """Score ``sources`` with ``bundle`` on Ray (``address``: a running cluster; None: a local instance with
    ``workers`` CPUs) into ``out``: a JSON-lines file, or with the suffix ``.parquet`` a folder of Parquet parts;
    appending to what it already holds. ``species``: the patients'; a model of another one is refused.

    Raises:
        MissingExtraError: Ray is not installed (the ``ray`` extra).
        ConfigError: ``out`` is neither .jsonl nor .parquet, or sources mix object stores and local paths.
    """
    try:
        import ray
    except ImportError:
        raise MissingExtraError("scoring on Ray needs the ray extra: pip install 'carelens[ray]'") from None
    out = Path(out)
    if out.suffix not in (".jsonl", ".parquet"):
        raise ConfigError(f"--ray writes JSON lines or Parquet (it resumes from them): give --out NAME.jsonl or "
                          f"NAME.parquet (a folder of parts), not {out.name}")
    # a bad bundle (or one for another species) fails here, once, not in every actor
    load_bundle(bundle).labels.require_species(species, "the model")
    sink: _JsonLines | _ParquetParts = _ParquetParts(out) if out.suffix == ".parquet" else _JsonLines(out)
    done = sink.done()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # rows in input order, as the single-process path writes them
        ctx.enable_progress_bars = False
        ds, skipped = _dataset(ray, sources, done)
        scored = errors = 0
        try:
            for row in _rows(ray, ds, Path(bundle), workers, batch_size) if ds is not None else ():
                sink.write(row["row"])
                scored += 1
                errors += bool(row["error"])
                if progress is not None:
                    progress(1)
        finally:
            sink.flush()
        return BatchSummary(scored=scored, skipped=skipped, errors=errors)
    finally:
        if started:
            ray.shutdown()
