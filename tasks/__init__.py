"""secure-iot pipeline library.

Every stage of the pipeline is a function in this package that takes an explicit
:class:`tasks.context.Context` and returns a :class:`tasks.evidence.StageResult`.
The nox sessions in ``noxfile.py`` are thin: they call ``python -m tasks <stage>``.
Nothing here performs I/O at import time.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
