"""AdaptiveAvgPool: gradient checks, its relation to AvgPool and GlobalAvgPool, PyTorch, errors, model files."""
import numpy as np
import pytest

from minidl import io
from minidl.gradcheck import check_layer
from minidl.layers import AdaptiveAvgPool, AvgPool, GlobalAvgPool
from minidl.layers.pool import adaptive_windows


@pytest.mark.parametrize("output_size,shape", [((3, 2), (2, 3, 7, 5)), ((4, 5), (2, 2, 2, 3)), (1, (3, 2, 4, 6)),
                                               ((6, 6), (1, 2, 13, 13)), ((2, 3), (2, 1, 6, 9))])
def test_gradient_check(output_size, shape, rng):
    result = check_layer(AdaptiveAvgPool(output_size), rng.standard_normal(shape), rng=rng)
    assert result.passed and result.max_rel_error < 1e-6, result.report()


def test_windows_by_hand():
    """7 rows to 3: [0, 3), [2, 5), [4, 7) (neighbours share a row); 2 to 4: each row twice."""
    assert adaptive_windows(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert adaptive_windows(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]
    assert adaptive_windows(12, 6) == [(2 * i, 2 * i + 2) for i in range(6)]


def test_divisible_sizes_are_plain_average_pooling(rng):
    x = rng.standard_normal((2, 3, 12, 9))
    np.testing.assert_allclose(AdaptiveAvgPool((4, 3)).forward(x), AvgPool((3, 3)).forward(x), rtol=1e-12)
    np.testing.assert_allclose(AdaptiveAvgPool(1).forward(x)[:, :, 0, 0], GlobalAvgPool().forward(x), rtol=1e-12)


def test_backward_by_hand():
    """A 1x1 map stretched to 2x2 gets back the sum of the four gradients."""
    layer = AdaptiveAvgPool(2)
    layer.forward(np.array([[[[5.0]]]]))
    np.testing.assert_array_equal(layer.backward_inputs(np.array([[[[1.0, 2.0], [3.0, 4.0]]]])), [[[[10.0]]]])


def test_forward_and_backward_equal_torch(rng):
    torch = pytest.importorskip("torch")
    for shape, out in (((2, 3, 7, 5), (3, 2)), ((1, 2, 1, 1), (6, 6)), ((2, 4, 13, 11), (6, 6))):
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(shape).astype(dtype)
            layer = AdaptiveAvgPool(out)
            y = layer.forward(x)
            grad_out = rng.standard_normal(y.shape).astype(dtype)
            tx = torch.from_numpy(x).requires_grad_()
            ty = torch.nn.functional.adaptive_avg_pool2d(tx, out)
            ty.backward(torch.from_numpy(grad_out))
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
            grad_x = layer.backward_inputs(grad_out)
            assert grad_x.dtype == dtype
            np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=tol, atol=tol)


def test_errors():
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool 'AdaptiveAvgPool': expected a 4-d input"):
        AdaptiveAvgPool(2).forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="output_size must be"):
        AdaptiveAvgPool(0)
    layer = AdaptiveAvgPool(2)
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward_inputs(np.zeros((1, 1, 2, 2)))
    layer.forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"expected grad_out of shape \(1, 1, 2, 2\)"):
        layer.backward_inputs(np.zeros((1, 1, 3, 3)))


def test_model_file_round_trip(tmp_path, rng):
    net = io.build({"type": "AdaptiveAvgPool", "config": {"output_size": [3, 2], "name": "pool"}, "children": {}})
    io.save(net, tmp_path / "pool.npz")
    loaded = io.load(tmp_path / "pool.npz")
    x = rng.standard_normal((2, 2, 7, 5))
    np.testing.assert_array_equal(loaded.forward(x), AdaptiveAvgPool((3, 2)).forward(x))
    assert loaded.name == "pool" and loaded.output_size == (3, 2)
