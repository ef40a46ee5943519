"""Files: a network in one .npz (a model file), a training checkpoint, atomic writes.

    from minidl import io
    io.save(net, "model.npz")
    net2 = io.load("model.npz")          # the same layers, the same numbers
    io.load_into(net, "model.npz")       # or fill an existing net of the same architecture

A model file keeps the architecture as a JSON tree of layer specs in the file's header,

    {"type": "Conv", "config": {...constructor arguments...}, "children": {}}

``config`` is what the layer's ``config()`` returns; a container (``Sequential``,
``Residual``) also lists its sub-layers' specs under ``children``, one entry per
attribute named in its ``child_fields``. Loading looks each type up in a
registry of classes and calls ``cls(**config, **children)``. The arrays are
stored as ``param.<i>`` and ``buffer.<i>`` in the order of ``net.params()`` and
``net.buffers()``, in their own dtype, so a loaded net computes bit for bit
what the saved one did.

A checkpoint is a model file with the rest of the training state added: the
optimiser's arrays (``optim.<key>``, from ``optimizer.state_dict``) and, under
``"checkpoint"`` in the header, the optimiser's type, the trainer's loop
position and generators, and the state of every random generator inside the
net (``Dropout``). ``load`` reads the network of a checkpoint like that of any
model file; ``Trainer.load_checkpoint`` (through ``load_checkpoint``) restores
everything.

Every file is written atomically (``atomic_target``); a corrupt or truncated
file, a file of another kind or another architecture gives a ``ValueError``
that says which.
"""
import contextlib
import inspect
import json
import os
import secrets

import numpy as np

from . import layers as _layers
from .layers import Sequential
from .torch_import import load_torch_state_dict  # noqa: F401  (PyTorch state dicts)

FORMAT = "minidl-model-1"


# ------------------------------------------------------------ atomic writes
# A file is written to a temporary name in the same directory, flushed to disk,
# then renamed over the target in one step (os.replace), so a reader sees either
# the old complete file or the new complete file, never a torn one.
@contextlib.contextmanager
def atomic_target(path, suffix=""):
    """Yield a temporary path beside ``path`` to write to; on success it is flushed to
    disk and renamed over ``path`` in one step, on any error it is removed.

    ``suffix`` ends the temporary name (writers that pick the format from the
    extension need it). The file gets the usual permissions (umask), not private ones.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.part{suffix}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically."""
    with atomic_target(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def atomic_savez(path, arrays, meta=None):
    """Write ``arrays`` (name -> array) and a JSON ``meta`` dict to ``path`` (.npz) atomically."""
    payload = dict(arrays)
    if meta is not None:
        payload["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with atomic_target(path) as tmp, open(tmp, "xb") as f:
        np.savez(f, **payload)


def load_npz(path):
    """(arrays dict, meta dict or None) from a file written by ``atomic_savez``."""
    try:
        # open the file here: np.load given a path leaks its handle when the zip is corrupt
        with open(os.fspath(path), "rb") as f, np.load(f, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable minidl .npz file ({exc})") from exc
    except Exception as exc:  # zipfile.BadZipFile and friends from a truncated file
        raise ValueError(f"{path}: corrupt .npz file ({type(exc).__name__}: {exc})") from exc
    meta = arrays.pop("__meta__", None)
    if meta is not None:
        meta = json.loads(meta.tobytes().decode("utf-8"))
    return arrays, meta


# ------------------------------------------------------------ layer types
_REGISTRY = {}


def register(cls, name=None):
    """Make ``cls`` loadable under ``name`` (default: its class name); returns ``cls``,
    so it can decorate a user's layer class. Its ``config()`` must return the
    JSON-serialisable keyword arguments of its constructor. A name taken by another
    class is refused; a new definition of the same class (same module and qualified
    name: a notebook cell run again, a reloaded module) replaces the old one."""
    name = name or cls.__name__
    existing = _REGISTRY.get(name)
    redefined = (existing is not None and existing.__module__ == cls.__module__
                 and existing.__qualname__ == cls.__qualname__)   # a re-run notebook cell, a reloaded module
    if existing is not None and existing is not cls and not redefined:
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


def _write(net, path, extra_arrays=None, extra_meta=None):
    """A model file of ``net``, plus more arrays and header entries (a checkpoint's)."""
    params, buffers = list(net.params()), list(net.buffers())
    arrays = {f"param.{i}": arr for i, (_, arr) in enumerate(params)}
    arrays.update({f"buffer.{i}": arr for i, (_, arr) in enumerate(buffers)})
    arrays.update(extra_arrays or {})
    meta = {"format": FORMAT, "architecture": layer_spec(net), "training": bool(getattr(net, "training", True)),
            "params": _array_table(params), "buffers": _array_table(buffers)}
    meta.update(extra_meta or {})
    atomic_savez(path, arrays, meta)


def save(net, path):
    """Write the architecture, parameters and buffers of ``net`` to ``path`` (.npz), atomically."""
    _write(net, path)


def _read(path):
    arrays, meta = load_npz(path)  # ValueError for unreadable, truncated or corrupt files
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        earlier = ("; a checkpoint of an earlier minidl, which this one cannot read"
                   if found == "minidl-checkpoint-1" else "")
        raise ValueError(f"{path}: not a minidl model file (format {found!r}, expected {FORMAT!r}){earlier}")
    return arrays, meta


def _check_architecture(net, meta, path, what="the file"):
    difference = _first_difference(meta["architecture"], layer_spec(net))
    if difference:
        raise ValueError(f"{path}: {what} holds a different architecture ({difference})")


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
    """Rebuild the network saved in ``path`` (a model file or a checkpoint): same layers,
    parameters, buffers and train/eval mode. Its random generators are fresh ones."""
    arrays, meta = _read(path)
    net = build(meta["architecture"])
    _fill(net, arrays, meta, path)
    return net.train(meta.get("training", True))


def load_into(net, path):
    """Load the parameters and buffers saved in ``path`` into ``net``, which must have the
    architecture of the saved network (types and configurations, names included). Returns ``net``."""
    arrays, meta = _read(path)
    _check_architecture(net, meta, path)
    _fill(net, arrays, meta, path)
    return net


# ------------------------------------------------------------ checkpoints
def _generators(layer, found=None):
    """The random generators of ``layer`` and its sub-layers (a Dropout's ``rng``), depth
    first, each once (layers may share one)."""
    found = [] if found is None else found
    rng = getattr(layer, "rng", None)
    if isinstance(rng, np.random.Generator) and all(rng is not g for g in found):
        found.append(rng)
    for field in getattr(layer, "child_fields", ()):
        value = getattr(layer, field)
        for child in value if isinstance(value, (list, tuple)) else [value]:
            if child is not None:
                _generators(child, found)
    return found


def _jsonable(state):
    """numpy's generator state with numpy integers made plain (for JSON)."""
    if isinstance(state, dict):
        return {k: _jsonable(v) for k, v in state.items()}
    return int(state) if isinstance(state, np.integer) else state


def generator_state(rng):
    """The state of a ``numpy.random.Generator`` as a JSON-ready dict."""
    return _jsonable(rng.bit_generator.state)


def save_checkpoint(path, net, optimizer, trainer_state):
    """Write a checkpoint: a model file of ``net``, the state arrays of ``optimizer`` and
    ``trainer_state`` (a JSON-ready dict), atomically."""
    params = [arr for _, arr in net.params()]
    optim_arrays = {f"optim.{key}": value for key, value in optimizer.state_dict(params).items()}
    checkpoint = {"optimizer": type(optimizer).__name__, "trainer": trainer_state,
                  "layer_generators": [generator_state(rng) for rng in _generators(net)]}
    _write(net, path, optim_arrays, {"checkpoint": checkpoint})


def load_checkpoint(path, net, optimizer):
    """Fill ``net`` and ``optimizer`` from a checkpoint written by ``save_checkpoint``
    and return its trainer state. A file of another architecture or for another optimiser
    is refused before anything is changed."""
    arrays, meta = _read(path)
    checkpoint = meta.get("checkpoint")
    if checkpoint is None:
        raise ValueError(f"{path}: a model file, not a training checkpoint (it holds no optimiser or "
                         f"trainer state); load it with minidl.io.load or minidl.io.load_into")
    _check_architecture(net, meta, path, "the checkpoint")
    if checkpoint["optimizer"] != type(optimizer).__name__:
        raise ValueError(f"{path}: the checkpoint holds {checkpoint['optimizer']} optimiser state, "
                         f"this trainer's optimiser is {type(optimizer).__name__}")
    generators = _generators(net)
    if len(generators) != len(checkpoint["layer_generators"]):
        raise ValueError(f"{path}: {len(checkpoint['layer_generators'])} random generators in the "
                         f"checkpoint, {len(generators)} in the net")
    _fill(net, arrays, meta, path)
    params = [arr for _, arr in net.params()]
    optimizer.load_state_dict(params, {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")})
    for rng, state in zip(generators, checkpoint["layer_generators"]):
        rng.bit_generator.state = state
    return checkpoint["trainer"]
