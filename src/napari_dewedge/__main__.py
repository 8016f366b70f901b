"""``python -m napari_dewedge``: the command line (also ``torchrun ... -m napari_dewedge fit ...``)."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
