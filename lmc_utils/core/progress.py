"""One line per long step (a model trained, a group of models trained together), for a terminal
that is not the notebook's.

A notebook run by :mod:`lmc_utils.run` has its progress bars inside the executed notebook; the
runner sets ``LMC_PROGRESS_FILE`` and prints each line appended to it as it comes, so the terminal
shows what is being trained. Outside the runner :func:`note` does nothing.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from . import settings

VARIABLE = settings.PROGRESS_FILE


def note(message: str) -> None:
    """Append one line to ``$LMC_PROGRESS_FILE`` (if set)."""
    path = settings.text(VARIABLE)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(message.replace("\n", " ") + "\n")
    except OSError:
        pass  # progress is a courtesy, never a failure


@contextmanager
def follow(path: Path, emit: Callable[[str], None] = print, interval: float = 0.5) -> Iterator[None]:
    """While the block runs, call ``emit`` with every line appended to ``path`` (a thread polls
    it); the lines written before the block ends are all emitted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")
    stop = threading.Event()
    position = [0]

    def drain() -> None:
        try:
            with open(path, encoding="utf-8") as f:
                f.seek(position[0])
                while True:
                    line = f.readline()
                    if not line.endswith("\n"):
                        break
                    position[0] = f.tell()
                    emit(line.rstrip("\n"))
        except OSError:
            pass

    def loop() -> None:
        while not stop.wait(interval):
            drain()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        drain()
