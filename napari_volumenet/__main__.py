"""``python -m napari_volumenet``: the same as the ``volumenet`` command."""

from .cli import run

if __name__ == "__main__":
    run()
