"""Bad arguments fail early with a message a student can act on.

Every message must name the layer and say what was expected and what was
received; none may be a bare IndexError or Cython's "No matching signature found".
"""
import re

import numpy as np
import pytest

from minidl.layers import (FC, AvgPool, BatchNorm, Conv, Dropout, Flatten, GlobalAvgPool, L2Regularizer, LeakyReLU,
                           LocalResponseNorm, MaxPool, MeanSquaredError, MulticlassHingeLoss, RegularizedLoss, ReLU,
                           Residual, Sigmoid, SoftmaxCrossEntropy, Tanh, resnet_block)
from minidl.models import lab_net


def raises(exc, call, *fragments):
    """Run ``call``, expect ``exc``, and check that every fragment appears in the message."""
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"
    assert "No matching signature" not in message
    return message


F32, F64 = np.float32, np.float64


# ------------------------------------------------------------ input shapes
@pytest.mark.parametrize("bad_shape", [(3, 5, 5), (1, 1, 3, 5, 5), (15,)])
def test_conv_wrong_ndim(bad_shape):
    conv = Conv(3, 4, (3, 2), name="conv1")
    raises(ValueError, lambda: conv.forward(np.ones(bad_shape, F32)),
           "conv1", "4-d", "(N, C, H, W)", str(bad_shape))


def test_maxpool_wrong_ndim():
    raises(ValueError, lambda: MaxPool(2, name="pool1").forward(np.ones((3, 4, 4))),
           "pool1", "4-d", "(3, 4, 4)")


def test_conv_wrong_channel_count():
    conv = Conv(3, 4, 3, name="conv1")
    raises(ValueError, lambda: conv.forward(np.ones((2, 5, 8, 8), F32)),
           "conv1", "expected 3 input channels", "got 5", "(2, 5, 8, 8)")


@pytest.mark.parametrize("hw", [(2, 6), (6, 1), (2, 1)])
def test_conv_input_smaller_than_the_kernel(hw):
    conv = Conv(1, 2, (3, 2), name="conv1")
    message = raises(ValueError, lambda: conv.forward(np.ones((1, 1, *hw), F32)),
                     "conv1", "3x2 kernel", f"{hw[0]}x{hw[1]}")
    assert "the output would be" in message


def test_kernel_larger_than_the_padded_input():
    conv = Conv(1, 1, (5, 3), padding=(1, 0), name="big")
    raises(ValueError, lambda: conv.forward(np.ones((1, 1, 2, 4), F32)),
           "big", "5x3 kernel", "2x4", "padded by (1, 0)", "0x2")
    # a kernel exactly as large as the padded input is fine: one output pixel
    assert conv.forward(np.ones((1, 1, 3, 3), F32)).shape == (1, 1, 1, 1)
    raises(ValueError, lambda: MaxPool((3, 4), name="mp").forward(np.ones((1, 2, 3, 3))),
           "mp", "3x4 window", "3x3")


def test_dilation_giving_a_non_positive_output_size():
    conv = Conv(1, 1, 3, dilation=(3, 1), name="dil")
    raises(ValueError, lambda: conv.forward(np.ones((1, 1, 6, 6), F32)),
           "dil", "3x3 kernel", "dilation (3, 1)", "6x6", "0x4")


def test_fc_wrong_shapes():
    fc = FC(4, 3, name="fc1")
    raises(ValueError, lambda: fc.forward(np.ones((2, 5), F32)), "fc1", "(N, 4)", "(2, 5)")
    raises(ValueError, lambda: fc.forward(np.ones((2, 1, 2, 2), F32)), "fc1", "(N, 4)", "Flatten")
    raises(ValueError, lambda: fc.forward(np.ones(4, F32)), "fc1", "(N, 4)", "(4,)")


def test_flatten_needs_a_batch_axis():
    raises(ValueError, lambda: Flatten(name="flat").forward(np.ones(3)), "flat", "2-d", "(3,)")


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("bad", [F64, np.float16, np.int64, np.int32, np.uint8, bool])
def test_float32_layers_reject_other_dtypes(bad):
    conv, fc = Conv(2, 2, 2, name="conv1"), FC(3, 2, name="fc1")
    name = np.dtype(bad).name
    raises(ValueError, lambda: conv.forward(np.ones((1, 2, 3, 3), bad)), "conv1", "float32", name)
    raises(ValueError, lambda: fc.forward(np.ones((2, 3), bad)), "fc1", "float32", name)


def test_float64_layer_rejects_float32():
    conv = Conv(2, 2, 2, dtype=F64, name="c64")
    raises(ValueError, lambda: conv.forward(np.ones((1, 2, 3, 3), F32)), "c64", "float64", "float32")


@pytest.mark.parametrize("bad", [np.float16, np.int64, np.int8, np.complex128])
def test_dtype_generic_layers_reject_non_float(bad):
    name = np.dtype(bad).name
    x = np.ones((1, 2, 4, 4), bad)
    for layer in (MaxPool(2, name="pool"), ReLU(name="relu"), Flatten(name="flat")):
        raises(ValueError, lambda: layer.forward(x), layer.name, "float32 or float64", name)


def test_a_float32_net_given_float64_images_names_the_first_layer():
    net = lab_net(image_size=8, conv1_width=2, conv2_width=2, fc_width=4, rng=0)
    raises(ValueError, lambda: net.forward(np.zeros((2, 1, 8, 8))), "conv1", "float32", "float64", "astype")


def test_non_arrays_are_rejected_by_type():
    raises(TypeError, lambda: ReLU(name="r").forward([1.0, -1.0]), "r", "numpy array", "list")


# ------------------------------------------------------ backward before forward
@pytest.mark.parametrize("make,grad_shape", [
    (lambda: Conv(1, 2, 3, name="L"), (1, 2, 2, 2)),
    (lambda: MaxPool(2, name="L"), (1, 1, 2, 2)),
    (lambda: FC(3, 2, name="L"), (1, 2)),
    (lambda: ReLU(name="L"), (1, 2)),
    (lambda: Flatten(name="L"), (1, 2)),
])
def test_backward_before_forward(make, grad_shape):
    layer = make()
    g = np.ones(grad_shape, F32)
    kind = type(layer).__name__
    raises(RuntimeError, lambda: layer.backward_inputs(g), f"{kind} 'L'", "before forward")
    if layer.params():
        raises(RuntimeError, lambda: layer.backward_params(g), f"{kind} 'L'", "before forward")
        raises(RuntimeError, lambda: layer.backprop(g), f"{kind} 'L'", "before forward")


def test_grad_out_of_the_wrong_shape_or_dtype():
    conv = Conv(1, 2, 3, name="conv1")
    conv.forward(np.ones((2, 1, 5, 4), F32))
    raises(ValueError, lambda: conv.backward_inputs(np.ones((2, 2, 3, 3), F32)),
           "conv1", "(2, 2, 3, 2)", "(2, 2, 3, 3)")
    raises(ValueError, lambda: conv.backward_params(np.ones((2, 2, 3, 2), F64)), "conv1", "float32", "float64")
    pool = MaxPool(2, name="pool1")
    pool.forward(np.ones((2, 1, 5, 4)))
    raises(ValueError, lambda: pool.backward_inputs(np.ones((2, 1, 3, 2))), "pool1", "(2, 1, 2, 2)", "(2, 1, 3, 2)")
    fc = FC(3, 2, name="fc1")
    fc.forward(np.ones((4, 3), F32))
    raises(ValueError, lambda: fc.backward_params(np.ones((3, 2), F32)), "fc1", "(4, 2)", "(3, 2)")
    relu = ReLU(name="relu1")
    relu.forward(np.ones((2, 3)))
    raises(ValueError, lambda: relu.backward_inputs(np.ones((3, 2))), "relu1", "(2, 3)", "(3, 2)")
    flat = Flatten(name="flat1")
    flat.forward(np.ones((2, 3, 2)))
    raises(ValueError, lambda: flat.backward_inputs(np.ones((2, 5))), "flat1", "(2, 6)", "(2, 5)")


# ------------------------------------------------------ constructor arguments
@pytest.mark.parametrize("what", ["kernel_size", "stride"])
@pytest.mark.parametrize("bad", [0, -1, (2, 0), (0, 3), [3, -2]])
def test_non_positive_kernel_or_stride(what, bad):
    args = {"kernel_size": 3, "stride": 1, what: bad}
    raises(ValueError, lambda: Conv(1, 1, args["kernel_size"], stride=args["stride"], name="cc"),
           "cc", what, ">= 1", str(bad))
    pool_args = {"kernel_size": 3, "stride": None, what: bad}
    raises(ValueError, lambda: MaxPool(pool_args["kernel_size"], stride=pool_args["stride"], name="pp"),
           "pp", what, str(bad))


@pytest.mark.parametrize("bad", [2.5, 3.0, "3", None, (3,), (1, 2, 3), True, (2, 1.5)])
def test_kernel_size_must_be_an_int_or_a_pair_of_ints(bad):
    raises(ValueError, lambda: Conv(1, 1, bad, name="cc"), "cc", "kernel_size", "int or a pair of ints")
    raises(ValueError, lambda: MaxPool(bad, name="pp"), "pp", "kernel_size")


@pytest.mark.parametrize("good,expected", [
    (np.int64(3), (3, 3)), (np.int32(2), (2, 2)), ([3, 2], (3, 2)), ((np.int8(1), 4), (1, 4)),
    (np.array([2, 3]), (2, 3)),
])
def test_numpy_integers_and_lists_are_accepted(good, expected):
    assert Conv(1, 1, good).kernel_size == expected
    assert Conv(1, 1, 1, stride=good).stride == expected
    assert MaxPool(good).kernel_size == expected


def test_negative_padding_and_bad_padding_strings():
    raises(ValueError, lambda: Conv(1, 1, 3, padding=-1, name="cc"), "cc", "padding", ">= 0", "-1")
    raises(ValueError, lambda: Conv(1, 1, 3, padding="valid", name="cc"), "cc", "'same'", "'valid'")
    raises(ValueError, lambda: Conv(1, 1, (3, 2), padding="same", name="cc"), "cc", "odd kernel", "(3, 2)")
    raises(ValueError, lambda: Conv(1, 1, 3, stride=2, padding="same", name="cc"), "cc", "stride 1", "(2, 2)")
    raises(ValueError, lambda: MaxPool(2, padding=2, name="pp"), "pp", "padding (2, 2)", "half", "(2, 2)")


def test_bad_channel_counts_and_dtypes():
    raises(ValueError, lambda: Conv(0, 2, 3, name="cc"), "cc", "in_channels", "positive integer", "0")
    raises(ValueError, lambda: Conv(2, 1.5, 3, name="cc"), "cc", "out_channels", "1.5")
    raises(ValueError, lambda: FC(3, -2, name="ff"), "ff", "out_features", "-2")
    raises(ValueError, lambda: Conv(2, 2, 3, dtype=np.float16, name="cc"), "cc", "float32 or float64", "float16")
    raises(ValueError, lambda: FC(2, 2, dtype=np.int32, name="ff"), "ff", "int32")


# --------------------------------------------------------------- losses
def test_labels_outside_the_class_range():
    loss = SoftmaxCrossEntropy()
    logits = np.zeros((4, 3))
    message = raises(ValueError, lambda: loss.forward(logits, np.array([0, 2, 3, 1])),
                     "SoftmaxCrossEntropy", "1 labels outside [0, 3)", "the first is 3 at index 2")
    assert re.search(r"index 2\b", message)
    raises(ValueError, lambda: loss.backward_inputs(logits, np.array([0, -1, 2, 7])),
           "2 labels outside [0, 3)", "the first is -1 at index 1")


def test_labels_must_be_integers_of_the_right_count():
    loss = SoftmaxCrossEntropy()
    raises(ValueError, lambda: loss.forward(np.zeros((3, 2)), np.array([0.0, 1.0, 1.0])), "integers", "float64")
    raises(ValueError, lambda: loss.forward(np.zeros((3, 2)), np.array([0, 1])), "expected 3 labels", "got 2")
    raises(ValueError, lambda: loss.forward(np.zeros((3, 2)), np.zeros((3, 3))), "(3,) or (3, 2)", "(3, 3)")


def test_negative_or_non_finite_targets():
    loss = SoftmaxCrossEntropy()
    targets = np.eye(3)[[0, 1, 2, 0]]
    targets[2, 1] = -0.25
    targets[3, 2] = -1.0
    raises(ValueError, lambda: loss.forward(np.zeros((4, 3)), targets),
           "2 negative or non-finite targets", "(2, 1)")
    targets = np.eye(3)[[0, 1, 2, 0]]
    targets[1, 0] = np.nan
    raises(ValueError, lambda: loss.backward_inputs(np.zeros((4, 3)), targets), "1 negative or non-finite", "(1, 0)")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logits(bad):
    loss = SoftmaxCrossEntropy()
    logits = np.zeros((3, 4))
    logits[1, 3] = bad
    logits[2, 0] = bad
    raises(ValueError, lambda: loss.forward(logits, np.array([0, 1, 2])), "2 non-finite logits", "(1, 3)")
    raises(ValueError, lambda: loss.backward_inputs(logits, np.array([0, 1, 2])), "2 non-finite logits", "(1, 3)")


def test_logits_of_the_wrong_kind():
    loss = SoftmaxCrossEntropy()
    raises(ValueError, lambda: loss.forward(np.zeros((2, 3), np.int64), np.array([0, 1])), "float32 or float64", "int64")
    raises(ValueError, lambda: loss.forward(np.zeros(3), np.array([0])), "(N, C)", "(3,)")


def test_regularizer_arguments():
    raises(ValueError, lambda: L2Regularizer(np.ones(3), -0.1, name="l2"), "l2", "weight_decay", "-0.1")
    raises(TypeError, lambda: L2Regularizer([1.0, 2.0], 0.1, name="l2"), "l2", "parameter array", "list")


def test_regularizer_without_a_name_is_called_by_its_type():
    message = raises(ValueError, lambda: L2Regularizer(np.ones(3), -1.0), "L2Regularizer 'L2Regularizer'")
    assert "'None'" not in message


# ================================================ the CNN toolbox, every layer
def toolbox_layers():
    """(id, factory of a layer named 'L' that takes (N, 2, H, W) float32 input)."""
    return [
        ("avgpool", lambda: AvgPool(2, name="L")),
        ("global-avgpool", lambda: GlobalAvgPool(name="L")),
        ("leaky-relu", lambda: LeakyReLU(0.1, name="L")),
        ("tanh", lambda: Tanh(name="L")),
        ("sigmoid", lambda: Sigmoid(name="L")),
        ("batchnorm", lambda: BatchNorm(2, name="L")),
        ("batchnorm-eval", lambda: BatchNorm(2, name="L").eval()),
        ("lrn", lambda: LocalResponseNorm(4, name="L")),
        ("dropout", lambda: Dropout(0.5, rng=0, name="L")),
        ("dropout-eval", lambda: Dropout(0.5, rng=0, name="L").eval()),
        ("residual", lambda: Residual(Conv(2, 2, 3, padding=1, name="body_conv", rng=0), name="L")),
        ("resnet-block", lambda: resnet_block(2, 3, stride=2, rng=0, name="L")),
    ]


TOOLBOX = toolbox_layers()
TOOLBOX_IDS = [t[0] for t in TOOLBOX]
FOUR_D = ["avgpool", "global-avgpool", "lrn"]          # layers that check the 4-d layout themselves


@pytest.mark.parametrize("kind", FOUR_D)
@pytest.mark.parametrize("bad_shape", [(3, 5, 5), (1, 2, 3, 5, 5), (15,), (2, 6)])
def test_four_d_toolbox_layers_reject_other_ndim(kind, bad_shape):
    layer = dict(TOOLBOX)[kind]()
    raises(ValueError, lambda: layer.forward(np.ones(bad_shape, F32)),
           f"{type(layer).__name__} 'L'", "4-d", "(N, C, H, W)", str(bad_shape))


@pytest.mark.parametrize("bad_shape", [(3, 5, 5), (1, 2, 3, 5, 5), (15,), (2, 2, 4)])
def test_batchnorm_rejects_other_ndim(bad_shape):
    for layer in (BatchNorm(2, name="bn"), BatchNorm(2, name="bn").eval()):
        raises(ValueError, lambda: layer.forward(np.ones(bad_shape, F32)),
               "BatchNorm 'bn'", "(N, 2, H, W)", "(N, 2)", str(bad_shape))


@pytest.mark.parametrize("bad_shape", [(4, 3, 5, 5), (4, 1, 5, 5), (6, 3), (6, 1)])
def test_batchnorm_wrong_channel_count(bad_shape):
    for layer in (BatchNorm(2, name="bn"), BatchNorm(2, name="bn").eval()):
        raises(ValueError, lambda: layer.forward(np.ones(bad_shape, F32)),
               "BatchNorm 'bn'", "(N, 2, H, W)", "(N, 2)", str(bad_shape))


def test_residual_wrong_input_names_the_body_layer_that_refused_it():
    block = resnet_block(3, 4, rng=0, name="block")
    raises(ValueError, lambda: block.forward(np.ones((2, 5, 6, 6), F32)),
           "conv1", "expected 3 input channels", "got 5", "(2, 5, 6, 6)")
    raises(ValueError, lambda: block.forward(np.ones((5, 6, 6), F32)), "conv1", "4-d", "(5, 6, 6)")
    identity = Residual(Conv(2, 3, 3, padding=1, rng=0), name="res")   # body changes the channel count
    raises(ValueError, lambda: identity.forward(np.ones((1, 2, 4, 4), F32)),
           "Residual 'res'", "(1, 3, 4, 4)", "(1, 2, 4, 4)", "projection")


@pytest.mark.parametrize("name,make", TOOLBOX, ids=TOOLBOX_IDS)
@pytest.mark.parametrize("bad", [np.float16, np.int64, np.int8, np.uint8, bool, np.complex128])
def test_toolbox_layers_reject_non_float_input(name, make, bad):
    layer = make()
    x = np.ones((2, 2, 4, 4), bad)
    expected = "float32" if isinstance(layer, BatchNorm) else "float32 or float64"
    raises(ValueError, lambda: layer.forward(x), f"{type(layer).__name__} 'L'", expected, np.dtype(bad).name)


def test_float32_toolbox_layers_reject_float64_where_their_parameters_are_float32():
    raises(ValueError, lambda: BatchNorm(2, name="bn").forward(np.ones((2, 2))),
           "BatchNorm 'bn'", "float32", "float64", "astype")
    block = resnet_block(2, 2, rng=0, name="block")
    raises(ValueError, lambda: block.forward(np.ones((2, 2, 4, 4))), "conv1", "float32", "float64")


@pytest.mark.parametrize("name,make", TOOLBOX, ids=TOOLBOX_IDS)
def test_toolbox_backward_before_forward(name, make):
    layer = make()
    g = np.ones((2, 2, 4, 4), F32)
    raises(RuntimeError, lambda: layer.backward_inputs(g), f"{type(layer).__name__} 'L'", "before forward")
    raises(RuntimeError, lambda: layer.backprop(g), f"{type(layer).__name__} 'L'", "before forward")
    if layer.params():
        raises(RuntimeError, lambda: layer.backward_params(g), f"{type(layer).__name__} 'L'", "before forward")


@pytest.mark.parametrize("name,make", TOOLBOX, ids=TOOLBOX_IDS)
def test_toolbox_grad_out_of_the_wrong_shape_or_dtype(name, make):
    layer = make()
    y = layer.forward(np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(F32))
    who = f"{type(layer).__name__} 'L'"
    wrong_shape = (y.shape[0] + 1,) + y.shape[1:]
    methods = [layer.backward_inputs, layer.backprop] + ([layer.backward_params] if layer.params() else [])
    for method in methods:
        raises(ValueError, lambda: method(np.ones(wrong_shape, F32)), who, str(y.shape), str(wrong_shape))
        raises(ValueError, lambda: method(np.ones(y.shape, F64)), who, "float32", "float64")
        raises(ValueError, lambda: method(np.ones(y.shape, np.int64)), who, "float32", "int64")


# ------------------------------------------------------- every loss
LOSSES = [
    ("cross-entropy", lambda: SoftmaxCrossEntropy(name="loss")),
    ("hinge", lambda: MulticlassHingeLoss(name="loss")),
    ("mse", lambda: MeanSquaredError(name="loss")),
]
LOSS_IDS = [c[0] for c in LOSSES]


@pytest.mark.parametrize("name,make", LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("bad", [np.float16, np.int64, bool])
def test_losses_reject_non_float_logits(name, make, bad):
    loss = make()
    for method in (loss.forward, loss.backward_inputs):
        raises(ValueError, lambda: method(np.zeros((2, 3), bad), np.array([0, 1])),
               f"{type(loss).__name__} 'loss'", "float32 or float64", np.dtype(bad).name)


@pytest.mark.parametrize("name,make", LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("bad_shape", [(3,), (2, 3, 1), (1, 2, 3, 1)])
def test_losses_reject_logits_that_are_not_n_by_c(name, make, bad_shape):
    loss = make()
    for method in (loss.forward, loss.backward_inputs):
        raises(ValueError, lambda: method(np.zeros(bad_shape), np.array([0, 1])),
               f"{type(loss).__name__} 'loss'", "(N, C)", str(bad_shape))


@pytest.mark.parametrize("name,make", LOSSES, ids=LOSS_IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_losses_reject_non_finite_logits(name, make, bad):
    loss = make()
    logits = np.zeros((3, 4), F32)
    logits[2, 1] = bad
    for method in (loss.forward, loss.backward_inputs):
        raises(ValueError, lambda: method(logits, np.array([0, 1, 2])),
               f"{type(loss).__name__} 'loss'", "1 non-finite logits", "(2, 1)")


@pytest.mark.parametrize("name,make", LOSSES, ids=LOSS_IDS)
def test_losses_reject_labels_of_the_wrong_count_or_range(name, make):
    loss = make()
    who = f"{type(loss).__name__} 'loss'"
    for method in (loss.forward, loss.backward_inputs):
        raises(ValueError, lambda: method(np.zeros((3, 4)), np.array([0, 1])), who, "expected 3 labels", "got 2")
        raises(ValueError, lambda: method(np.zeros((3, 4)), np.array([0, 4, 1])), who, "labels outside [0, 4)",
               "the first is 4 at index 1")
        raises(ValueError, lambda: method(np.zeros((3, 4)), np.array([0.0, 1.0, 2.0])), who, "integers", "float64")


def test_hinge_loss_needs_one_hot_rows_and_mse_finite_targets_of_the_logits_shape():
    hinge, mse = MulticlassHingeLoss(name="hinge"), MeanSquaredError(name="mse")
    raises(ValueError, lambda: hinge.forward(np.zeros((2, 3)), np.full((2, 3), 1 / 3)),
           "MulticlassHingeLoss 'hinge'", "one-hot", "row 0")
    raises(ValueError, lambda: hinge.forward(np.zeros((2, 3)), np.zeros((2, 4))), "'hinge'", "(2, 3)", "(2, 4)")
    raises(ValueError, lambda: mse.forward(np.zeros((2, 3)), np.zeros((2, 4))),
           "MeanSquaredError 'mse'", "(2, 3)", "(2, 4)")
    targets = np.zeros((2, 3))
    targets[1, 2] = np.nan
    for method in (mse.forward, mse.backward_inputs):
        raises(ValueError, lambda: method(np.zeros((2, 3)), targets), "'mse'", "1 non-finite targets", "(1, 2)")
    raises(ValueError, lambda: MulticlassHingeLoss(delta=-1.0, name="hinge"), "'hinge'", "delta", "-1.0")
    raises(ValueError, lambda: MulticlassHingeLoss(delta=np.nan, name="hinge"), "'hinge'", "delta", "nan")


@pytest.mark.parametrize("bad", [np.float16, np.int64, bool])
def test_regularizer_weights_must_be_a_float_parameter(bad):
    raises(ValueError, lambda: L2Regularizer(np.ones(3, bad), 0.1, name="l2"),
           "L2Regularizer 'l2'", "float32 or float64", np.dtype(bad).name)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1e-3, "0.1", None, True])
def test_regularizer_weight_decay_must_be_a_number_at_least_zero(bad):
    raises(ValueError, lambda: L2Regularizer(np.ones(3), bad, name="l2"), "L2Regularizer 'l2'", "weight_decay",
           repr(bad))


def test_regularized_loss_checks_its_parts():
    raises(TypeError, lambda: RegularizedLoss(L2Regularizer(np.ones(3), 0.1), []),
           "RegularizedLoss", "data loss", "L2Regularizer")
    raises(TypeError, lambda: RegularizedLoss(SoftmaxCrossEntropy(), [np.ones(3)]),
           "RegularizedLoss", "regularizer", "ndarray")
    loss = RegularizedLoss(SoftmaxCrossEntropy(name="ce"), [L2Regularizer(np.ones(3), 0.1)])
    raises(ValueError, lambda: loss.forward(np.zeros((2, 3), np.int64), np.array([0, 1])), "'ce'", "int64")
