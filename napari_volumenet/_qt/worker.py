"""What every widget worker shares: a ``thread_worker`` on a generator of updates, whose errors come back as a
:class:`Failure` value instead of an exception."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from ..errors import VolumeNetError

Update = TypeVar("Update")
Result = TypeVar("Result")


@dataclass
class Failure:
    """What the worker returns instead of a result when something went wrong."""

    message: str


def _guarded(steps: Generator[Update, Any, Result]) -> Generator[Update, Any, Result | Failure]:
    """Run ``steps`` in the worker; errors come back as a :class:`Failure` (shown as a notification)."""
    try:
        return (yield from steps)
    except VolumeNetError as error:
        return Failure(str(error))
    except torch.OutOfMemoryError:
        return Failure("Out of memory: choose a smaller tile size or another device.")
    except Exception as error:  # noqa: BLE001 - shown to the user, the widget stays usable
        return Failure(f"Unexpected error ({type(error).__name__}): {error}")


def start_worker(steps: Generator[Any, Any, Any], *, yielded: Callable[[Any], None], returned: Callable[[Any], None],
                 aborted: Callable[[], None], finished: Callable[[], None]) -> Any:
    """A started napari ``thread_worker`` driving ``steps`` (:func:`_guarded`), its signals connected; its ``quit()``
    stops it at the next update."""
    from napari.qt.threading import thread_worker

    worker = thread_worker(_guarded, start_thread=False)(steps)
    worker.yielded.connect(yielded)
    worker.returned.connect(returned)
    worker.aborted.connect(aborted)
    worker.finished.connect(finished)
    worker.start()
    return worker


def no_result(value: Any, status: Any) -> bool:
    """Whether a worker returned no result: a :class:`Failure` (shown as an error notification and in the ``status``
    label) or None."""
    if isinstance(value, Failure):
        from napari.utils.notifications import show_error

        show_error(value.message)
        status.setText(f"Failed: {value.message}")
    return value is None or isinstance(value, Failure)
