"""PyTorch state dicts in and out of minidl nets, and torchvision's models beside a CPU torch.

    from minidl import models, io
    net = models.resnet18()
    io.load_torch_state_dict(net, torch.load("resnet18.pth"))      # torchvision's weights
    net.eval()

How keys map. A state-dict key is the dotted path of a module followed by the
name of its array (``layer1.0.conv1.weight``). A minidl array gets the same key
from the *names* of the layers above it:

* the net itself adds nothing; every other layer adds its ``name`` (a name may
  hold dots: alexnet's first convolution is named ``features.0``);
* a ``Residual`` block's ``body`` adds nothing (its layers are the block's own, as
  the layers of torchvision's ``BasicBlock``); its ``shortcut`` adds its name
  (``downsample`` in ``minidl.models``' ResNets);
* the array's own name, in PyTorch's words: ``Conv``/``FC`` ``weights`` -> ``weight``,
  ``bias`` -> ``bias``; ``BatchNorm`` ``gamma`` -> ``weight``, ``beta`` -> ``bias``,
  ``running_mean``, ``running_var``.

So a net whose layers are named as a torch model's modules reads that model's state
dict; the builders of ``minidl.models`` are named that way. ``torch_keys(net)`` lists the
keys of a net. The layouts agree: ``Conv`` weights (F, C, KH, KW) as ``nn.Conv2d``,
``FC`` weights (out, in) as ``nn.Linear``, ``Flatten`` of (C, H, W) channel by channel
as ``torch.flatten``. ``num_batches_tracked`` is ignored (minidl's BatchNorm has a fixed
momentum). Nothing here imports torch: arrays come in as torch tensors or NumPy arrays.
"""
import sys
import types
from collections import namedtuple

import numpy as np

__all__ = ["IncompatibleKeys", "import_torchvision", "load_torch_state_dict", "torch_keys", "torch_state_dict"]

#: minidl's array names -> PyTorch's (names not listed are the same in both)
TORCH_NAMES = {"weights": "weight", "gamma": "weight", "beta": "bias"}

#: keys of a torch state dict that minidl has no use for
IGNORED_SUFFIXES = ("num_batches_tracked",)

#: what ``load_torch_state_dict`` returns, as ``torch.nn.Module.load_state_dict`` does
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

_MAX_LISTED = 12  # keys listed per kind in an error message


# ------------------------------------------------------------------- keys
def _children(layer):
    """[(path segment or '', sub-layer), ...] of a container; [] for a leaf layer."""
    out = []
    for field in getattr(layer, "child_fields", ()):
        value = getattr(layer, field, None)
        values = value if isinstance(value, (list, tuple)) else ([] if value is None else [value])
        for child in values:
            # a residual block's body holds the block's own layers: no segment of its own
            transparent = field == "body" and type(layer).__name__ == "Residual"
            out.append(("" if transparent else child.name, child))
    return out


def _walk(layer, prefix, out, where):
    children = _children(layer)
    if not children:
        for kind, method in (("parameter", "params"), ("buffer", "buffers")):
            for name, array in (getattr(layer, method)() if hasattr(layer, method) else []):
                key = prefix + TORCH_NAMES.get(name, name)
                if key in out:
                    raise ValueError(f"minidl.torch_import: {where[key]} and {type(layer).__name__} "
                                     f"'{layer.name}' {name} both map to the key {key!r}; give the layers "
                                     f"distinct names")
                out[key] = array
                where[key] = f"{type(layer).__name__} '{layer.name}' {kind} {name}"
        return
    for segment, child in children:
        _walk(child, prefix + segment + "." if segment else prefix, out, where)


def _keys_and_descriptions(net):
    arrays, where = {}, {}
    _walk(net, "", arrays, where)
    return arrays, where


def torch_keys(net):
    """{torch key: live array} of every parameter and buffer of ``net``, in the net's order."""
    return _keys_and_descriptions(net)[0]


def torch_state_dict(net):
    """{torch key: copy of the array} of ``net``: what the same model in PyTorch would load
    (wrap each value with ``torch.from_numpy``; BatchNorm's ``num_batches_tracked`` is absent)."""
    return {key: array.copy() for key, array in torch_keys(net).items()}


# ---------------------------------------------------------------- loading
def _as_numpy(value, key):
    """A torch tensor (any device, bfloat16 too) or an array-like -> a NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        try:
            return value.numpy()
        except TypeError:  # dtypes NumPy lacks (bfloat16): through float32
            return value.float().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - say which key could not be read
        raise ValueError(f"minidl.torch_import: the value of {key!r} is not an array ({exc})") from exc


def _listing(title, lines):
    shown = lines[:_MAX_LISTED]
    more = f"\n    ... and {len(lines) - len(shown)} more" if len(lines) > len(shown) else ""
    return f"\n  {title} ({len(lines)}):\n    " + "\n    ".join(shown) + more


def load_torch_state_dict(net, state_dict, strict=True):
    """Copy a PyTorch ``state_dict`` (torch tensors or NumPy arrays) into ``net``'s
    parameters and buffers, matched by key (see the module's docstring).

    Checks everything before copying anything: a key the net lacks ("unexpected"), an
    array of the net the state dict lacks ("missing"), or an array of another shape
    ("mis-shaped") raises one ``ValueError`` listing each. With ``strict=False`` missing
    and unexpected keys are allowed (shapes still must match). Values are converted to
    the dtype of the net's arrays. Returns ``IncompatibleKeys(missing_keys, unexpected_keys)``.
    """
    if not hasattr(state_dict, "items"):
        raise TypeError(f"load_torch_state_dict: expected a state dict (a mapping of keys to tensors), "
                        f"got {type(state_dict).__name__}")
    arrays, where = _keys_and_descriptions(net)
    given = {str(key): value for key, value in state_dict.items()
             if not str(key).endswith(IGNORED_SUFFIXES)}
    values = {key: _as_numpy(value, key) for key, value in given.items() if key in arrays}
    missing = [key for key in arrays if key not in given]
    unexpected = [key for key in given if key not in arrays]
    misshaped = [key for key, value in values.items() if value.shape != arrays[key].shape]
    problems = ""
    if misshaped:
        problems += _listing("mis-shaped", [f"{key}: {tuple(values[key].shape)} in the state dict, "
                                            f"{arrays[key].shape} in the net ({where[key]})" for key in misshaped])
    if strict and missing:
        problems += _listing("missing (in the net, not in the state dict)",
                             [f"{key} ({where[key]}, {arrays[key].shape})" for key in missing])
    if strict and unexpected:
        problems += _listing("unexpected (in the state dict, no such array in the net)", unexpected)
    if problems:
        hint = "" if not (missing or unexpected) else (
            "\n  (keys are the layer names joined by dots; minidl.torch_import.torch_keys(net) lists the net's)")
        raise ValueError(f"load_torch_state_dict: the state dict does not fit the net "
                         f"'{getattr(net, 'name', type(net).__name__)}':{problems}{hint}")
    for key, value in values.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"load_torch_state_dict: {key} holds non-finite values (NaN or inf)")
    for key, value in values.items():
        arrays[key][...] = value  # in place: the optimiser and the net keep the same arrays
    return IncompatibleKeys(missing, unexpected)


# ------------------------------------------------------------ torchvision
def _stub_module(name, **attributes):
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    module.__doc__ = "Stub put in place by minidl.torch_import.import_torchvision: compiled operators unavailable."
    return module


def _no_compiled_ops():
    raise RuntimeError("torchvision's compiled operators (nms, roi_align, ...) are not available: it was "
                       "imported by minidl.torch_import.import_torchvision without them, beside a torch "
                       "they were not built for; models and transforms work, these operators do not")


def import_torchvision():
    """``torchvision``, imported even beside a torch its compiled operators were not built for.

    The ordinary import is tried first. Where it fails because the compiled part does
    not load (``operator torchvision::nms does not exist``: a wheel built for another
    torch or CUDA), the half-imported modules are dropped and torchvision is imported
    again with its three modules that load and register the compiled operators
    (``torchvision.extension``, ``torchvision._meta_registrations``,
    ``torchvision._autograd_registrations``) replaced by stubs. Its model definitions are
    pure Python and work; the operators (``torchvision.ops.nms`` and friends) raise a
    RuntimeError saying why. ``torchvision._minidl_stubbed`` tells which import happened.
    An ImportError (torch or torchvision not installed) is raised as it is.
    """
    imported = sys.modules.get("torchvision")
    if imported is not None and hasattr(imported, "_minidl_stubbed"):  # done before
        return imported
    try:
        import torchvision
        torchvision._minidl_stubbed = False
        return torchvision
    except ImportError:
        raise
    except (RuntimeError, OSError, AttributeError):
        pass
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    sys.modules["torchvision.extension"] = _stub_module(
        "torchvision.extension", _has_ops=lambda: False, _assert_has_ops=_no_compiled_ops,
        _load_library=lambda lib_name: False, _check_cuda_version=lambda: -1)
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules[name] = _stub_module(name)
    import torchvision
    torchvision._minidl_stubbed = True
    return torchvision
