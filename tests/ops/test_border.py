import numpy as np
import pytest

from napari_volumenet.ops.border import extend_border, extended_window, symmetric_indices


@pytest.mark.parametrize("n", [1, 2, 5])
@pytest.mark.parametrize("width", [0, 1, 3, 12])
def test_extend_border_is_numpy_symmetric_even_beyond_the_axis(n, width):
    v = np.arange(n * 4 * 3, dtype=np.float32).reshape(n, 4, 3)
    assert np.array_equal(extend_border(v, width), np.pad(v, width, mode="symmetric"))


def test_the_edge_voxel_is_repeated():
    assert symmetric_indices(4, -3, 7).tolist() == [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]


def test_a_window_inside_the_volume_is_a_view():
    v = np.zeros((6, 6, 6), np.float32)
    window = extended_window(v, (slice(1, 4), slice(0, 6), slice(2, 3)))
    assert np.shares_memory(window, v) and window.shape == (3, 6, 1)


def test_a_window_past_the_border_reads_the_mirror():
    v = np.random.default_rng(0).random((5, 6, 7))
    padded = np.pad(v, 4, mode="symmetric")
    window = extended_window(v, (slice(-4, 2), slice(3, 10), slice(-1, 8)))
    assert np.array_equal(window, padded[0:6, 7:14, 3:12])
