"""secure-iot pipeline library.

Every stage of the pipeline is a function in ``tasks.stages`` that takes an explicit
:class:`tasks.context.Context` and the stage's :class:`tasks.core.evidence.StageRecord`, and
returns its verdict (:data:`tasks.core.evidence.Verdict`).
The nox sessions in ``noxfile.py`` are thin: they call ``python -m tasks <stage>``.
Nothing here performs I/O at import time.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
