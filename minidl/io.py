"""Model files: a network's architecture, parameters and buffers in one .npz.

    from minidl import io
    io.save(net, "model.npz")
    net2 = io.load("model.npz")          # the same layers, the same numbers
    io.load_into(net, "model.npz")       # or fill an existing net of the same architecture

The architecture is a JSON tree of layer specs kept in the file's header,

    {"type": "Conv", "config": {...constructor arguments...}, "children": {}}

``config`` is what the layer's ``config()`` returns; a container (``Sequential``,
``Residual``) also lists its sub-layers' specs under ``children``, one entry per
attribute named in its ``child_fields``. Loading looks each type up in a
registry of classes and calls ``cls(**config, **children)``. The arrays are
stored as ``param.<i>`` and ``buffer.<i>`` in the order of ``net.params()`` and
``net.buffers()``, in their own dtype, so a loaded net computes bit for bit
what the saved one did. Not saved: optimiser state (see ``Trainer`` checkpoints)
and random generators (a loaded ``Dropout`` draws from a fresh one).

Files are written atomically (``minidl.checkpoint.atomic_savez``); a corrupt or
truncated file, a file of another kind or another architecture gives a
``ValueError`` that says which.
"""
import inspect
import json


from . import layers as _layers
from .checkpoint import atomic_savez, load_npz
from .net import Sequential
from .torch_import import load_torch_state_dict  # noqa: F401  (PyTorch state dicts)

FORMAT = "minidl-model-1"

_REGISTRY = {}


def register(cls, name=None):
    """Make ``cls`` loadable under ``name`` (default: its class name); returns ``cls``,
    so it can decorate a user's layer class. Its ``config()`` must return the
    JSON-serialisable keyword arguments of its constructor."""
    name = name or cls.__name__
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"minidl.io.register: the name {name!r} is taken by {existing.__module__}."
                         f"{existing.__qualname__}")
    _REGISTRY[name] = cls
    return cls


for _name in _layers.__all__:
    _obj = getattr(_layers, _name)
    if inspect.isclass(_obj) and issubclass(_obj, _layers.Layer) and _obj is not _layers.Layer:
        register(_obj)
register(Sequential)


# ------------------------------------------------------------ architecture
def layer_spec(layer):
    """The JSON-ready tree {"type", "config", "children"} describing ``layer`` and its sub-layers."""
    kind = type(layer).__name__
    if _REGISTRY.get(kind) is not type(layer):
        raise ValueError(f"minidl.io: {kind} is not a registered layer type; register it with "
                         f"minidl.io.register({kind}) so a file of it can be loaded again")
    children = {}
    for field in getattr(layer, "child_fields", ()):
        value = getattr(layer, field)
        if isinstance(value, (list, tuple)):
            children[field] = [layer_spec(child) for child in value]
        else:
            children[field] = None if value is None else layer_spec(value)
    spec = {"type": kind, "config": dict(layer.config()), "children": children}
    try:
        return json.loads(json.dumps(spec))  # tuples -> lists: the form it has after loading
    except TypeError as exc:
        raise ValueError(f"minidl.io: the config of {kind} is not JSON-serialisable ({exc})") from exc


def build(spec):
    """A new layer (with fresh parameters) from a spec written by ``layer_spec``."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"minidl.io: not a layer spec: {spec!r:.200}")
    kind = spec["type"]
    cls = _REGISTRY.get(kind)
    if cls is None:
        raise ValueError(f"minidl.io: unknown layer type {kind!r} (known: {', '.join(sorted(_REGISTRY))}); "
                         f"register a user layer with minidl.io.register")
    kwargs = dict(spec.get("config", {}))
    for field, value in spec.get("children", {}).items():
        if isinstance(value, list):
            kwargs[field] = [build(child) for child in value]
        else:
            kwargs[field] = None if value is None else build(value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"minidl.io: cannot rebuild {kind} from {kwargs!r:.300} ({exc})") from exc


def _first_difference(saved, current, path="net"):
    """Where two spec trees first differ, as 'path: saved ... current ...', or None."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in list(saved) + [k for k in current if k not in saved]:
            if key not in saved or key not in current:
                return f"{path}.{key}: present in {'the net' if key in current else 'the file'} only"
            found = _first_difference(saved[key], current[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(saved, list) and isinstance(current, list):
        if len(saved) != len(current):
            return f"{path}: {len(saved)} entries in the file, {len(current)} in the net"
        for i, (a, b) in enumerate(zip(saved, current)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    if saved != current:
        return f"{path}: {saved!r} in the file, {current!r} in the net"
    return None


# ------------------------------------------------------------------ files
def _array_table(named):
    return [[name, list(arr.shape), arr.dtype.name] for name, arr in named]


def save(net, path):
    """Write the architecture, parameters and buffers of ``net`` to ``path`` (.npz), atomically."""
    params, buffers = list(net.params()), list(net.buffers())
    arrays = {f"param.{i}": arr for i, (_, arr) in enumerate(params)}
    arrays.update({f"buffer.{i}": arr for i, (_, arr) in enumerate(buffers)})
    meta = {"format": FORMAT, "architecture": layer_spec(net), "training": bool(getattr(net, "training", True)),
            "params": _array_table(params), "buffers": _array_table(buffers)}
    atomic_savez(path, arrays, meta)


def _read(path):
    arrays, meta = load_npz(path)  # ValueError for unreadable, truncated or corrupt files
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path}: not a minidl model file (format {found!r}, expected {FORMAT!r})"
                         + ("; a training checkpoint is restored by Trainer.load_checkpoint"
                            if found == "minidl-checkpoint-1" else ""))
    return arrays, meta


def _fill(net, arrays, meta, path):
    """Copy the saved arrays into the live parameters and buffers of ``net``."""
    for kind, table, named in (("param", meta["params"], net.params()), ("buffer", meta["buffers"], net.buffers())):
        named = list(named)
        if [row[0] for row in table] != [name for name, _ in named]:
            raise ValueError(f"{path}: the file's {kind}s {[row[0] for row in table]} do not match the "
                             f"net's {[name for name, _ in named]}")
        for i, (name, arr) in enumerate(named):
            key = f"{kind}.{i}"
            if key not in arrays:
                raise ValueError(f"{path}: {kind} {name} ({key}) is missing from the file")
            saved = arrays[key]
            if saved.shape != arr.shape or saved.dtype != arr.dtype:
                raise ValueError(f"{path}: {kind} {name} is {saved.dtype.name} {saved.shape} in the file, "
                                 f"{arr.dtype.name} {arr.shape} in the net")
            arr[...] = saved


def load(path):
    """Rebuild the network saved in ``path``: same layers, parameters, buffers and train/eval mode."""
    arrays, meta = _read(path)
    net = build(meta["architecture"])
    _fill(net, arrays, meta, path)
    return net.train(meta.get("training", True))


def load_into(net, path):
    """Load the parameters and buffers saved in ``path`` into ``net``, which must have the
    architecture of the saved network (types and configurations, names included). Returns ``net``."""
    arrays, meta = _read(path)
    difference = _first_difference(meta["architecture"], layer_spec(net))
    if difference:
        raise ValueError(f"{path}: the file holds a different architecture ({difference})")
    _fill(net, arrays, meta, path)
    return net
