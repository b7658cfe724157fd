"""Where a bundle is written: built beside its folder and moved into place only when complete, so that a failed
export leaves the previous bundle as it was, and a folder that is not a bundle is never emptied."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from carelens.errors import ConfigError

__all__ = ["bundle_folder", "check_bundle_target"]


def check_bundle_target(out: Path) -> Path:
    """``out`` resolved, when a bundle may be written there (a new folder, an empty one, or a bundle's); call it
    before long work whose result :func:`bundle_folder` will write, so a wrong ``--out`` fails at once.

    Raises:
        ConfigError: ``out`` is a file, or a folder of other things (a bundle replaces its whole folder).
    """
    final = Path(out).resolve()
    if final.exists():
        held = sorted(p.name for p in final.iterdir())[:5] if final.is_dir() else []
        if not final.is_dir() or (held and not (final / "bundle.json").is_file()):
            raise ConfigError(
                f"{out} exists and is not a bundle folder" + (f" (it holds {', '.join(held)} ...)" if held else "")
                + ": a bundle replaces its whole folder, so give a new or a bundle's folder, e.g. "
                f"{Path(out) / 'my_model'}")
    return final


@contextmanager
def bundle_folder(out: Path) -> Iterator[Path]:
    """Yields an empty folder beside ``out`` to build the bundle in; when the block ends without an exception it
    replaces ``out`` (the previous bundle, if any, is removed only then); on an exception it is removed and ``out``
    is untouched.

    Raises:
        ConfigError: ``out`` exists and is not a bundle folder (a file, or a folder with files but no bundle.json):
            writing a bundle replaces the whole folder, so a folder of other things is refused, not emptied.
    """
    final = check_bundle_target(out)
    partial, previous = (final.parent / f".{final.name}.{what}" for what in ("partial", "previous"))
    for leftover in (partial, previous):  # from a process killed half-way
        shutil.rmtree(leftover, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # nothing half-written is left behind
        raise
    if final.exists():
        final.rename(previous)
    partial.rename(final)
    shutil.rmtree(previous, ignore_errors=True)
