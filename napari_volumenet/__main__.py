"""``python -m napari_volumenet``: the same as the ``volumenet`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
