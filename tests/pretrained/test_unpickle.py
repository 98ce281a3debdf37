import os
import pickle

import numpy as np
import pytest

from flowmapsr.pretrained.unpickle import UnsafePickle, load_numpy_pickle


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_arrays_in_plain_containers_load(protocol):
    tree = {"a": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 4)}, "b": [np.ones(3)]}
    out = load_numpy_pickle(pickle.dumps(tree, protocol=protocol))
    np.testing.assert_array_equal(out["a"]["kernel"], tree["a"]["kernel"])
    assert out["a"]["kernel"].dtype == np.float32
    np.testing.assert_array_equal(out["b"][0], np.ones(3))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


class _Plain:
    pass


@pytest.mark.parametrize("obj", [_Payload(), _Plain(), {"x": _Plain()}, np.float32(1.0)])
def test_anything_else_is_refused(obj):
    with pytest.raises(UnsafePickle, match="refused to load"):
        load_numpy_pickle(pickle.dumps(obj))


def test_refusal_is_an_unpickling_error():
    assert issubclass(UnsafePickle, pickle.UnpicklingError)


class _Rot13:
    def __reduce__(self):
        import codecs

        return (codecs.encode, ("abc", "rot13"))


def test_codecs_encode_is_admitted_for_latin1_only():
    with pytest.raises(UnsafePickle, match="rot13"):
        load_numpy_pickle(pickle.dumps(_Rot13(), protocol=2))
    assert load_numpy_pickle(pickle.dumps(b"\x00\xff", protocol=2)) == b"\x00\xff"
