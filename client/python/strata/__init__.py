"""strata — Python binding of libstrata (include/strata.h), through ctypes.

Two kinds of table:

* ``Client(servers, secret=...)`` connects to a cluster of strata-servers;
  ``client.table(name)`` gives a :class:`Table` whose ``lookup`` and
  ``push`` go over the network (UCX) and whose optimizer runs on the
  servers.
* ``LocalTable(name, dim, capacity, ...)`` is the in-process DRAM store
  (``strata_table_*``), the same shards a server holds; handy for tests
  and single-process use.

Arrays are numpy arrays:

* keys: a 1-D, C-contiguous array of an integer dtype whose values fit in
  uint64 (uint64 is used in place; other integer dtypes are converted,
  negative values are refused).  A non-contiguous array (``keys[::2]``,
  a column of a 2-D array) is refused with ValueError instead of being
  copied silently: pass ``np.ascontiguousarray(keys)`` when a copy is
  what you want.
* rows out of ``lookup``: float32 ``[n, dim]``; found codes: uint8 ``[n]``
  (``ROW_MISSING``, ``ROW_FOUND``, ``ROW_CREATED``, ``ROW_NOT_ADMITTED``).
* gradients into ``push``: float32 ``[n, dim]``, C-contiguous.  float64
  is refused (TypeError suggesting ``.astype(np.float32)``), never
  narrowed silently.

Bad arguments raise TypeError or ValueError naming the problem before any
call into the library.  Errors from the library raise :class:`StrataError`
carrying the status code (``.status``), its name (``.name``, e.g.
``"STRATA_ERR_READ_ONLY"``) and the library's sentence about the failure
(``.message``, from ``strata_last_error()``).

Threads and the GIL: ``ctypes.CDLL`` releases the GIL for the duration of
every foreign call, so lookups and pushes run in parallel with other
Python threads.  A Client (one UCX worker in the library) may be used by
one thread at a time; this binding holds a per-client lock around each
call, so sharing one Client between threads is safe but serialized —
threads that want parallel network calls each make their own Client.
LocalTable calls are not serialized here: read-only lookups run lock-free
in the library and writers are serialized per shard by the library;
``close()`` must not race other calls on the same LocalTable.

The shared library is found, in order: ``$STRATA_LIB``; ``libstrata.so``
next to this file (an installed copy); the source tree's
``build/core/libstrata.so``; the system's library path.
"""

import ctypes
import ctypes.util
import os
import threading

import numpy as np

__all__ = [
    "StrataError", "Client", "Table", "LocalTable", "library_path", "version",
    "ROW_MISSING", "ROW_FOUND", "ROW_CREATED", "ROW_NOT_ADMITTED",
    "OptimizerParams", "Initializer", "TableSchema", "TableParams",
    "ClientParams", "ClientStats", "TableStats",
]

# ---------------------------------------------------------------------------
# Constants mirrored from include/strata.h
# ---------------------------------------------------------------------------

ROW_MISSING = 0
ROW_FOUND = 1
ROW_CREATED = 2
ROW_NOT_ADMITTED = 3

LOOKUP_INIT_MISSING = 1 << 0

_OPT_FIELD_LR = 1 << 0
_OPT_FIELD_EPS = 1 << 1
_OPT_FIELD_BETA1 = 1 << 2
_OPT_FIELD_BETA2 = 1 << 3
_OPT_FIELD_WEIGHT_DECAY = 1 << 4
_OPT_FIELD_INITIAL_ACCUMULATOR = 1 << 5
_OPT_FIELD_L1 = 1 << 6
_OPT_FIELD_L2 = 1 << 7
_OPT_FIELD_FTRL_BETA = 1 << 8

_SCHEMA_FIELD_NAME = 1 << 0
_SCHEMA_FIELD_DIM = 1 << 1
_SCHEMA_FIELD_ELEM_TYPE = 1 << 2
_SCHEMA_FIELD_OPTIMIZER = 1 << 3
_SCHEMA_FIELD_INITIALIZER = 1 << 4
_SCHEMA_FIELD_CAPACITY = 1 << 5
_SCHEMA_FIELD_ADMISSION = 1 << 6
_SCHEMA_FIELD_EVICTION = 1 << 7
_SCHEMA_FIELD_TTL = 1 << 8
_SCHEMA_FIELD_NSHARDS = 1 << 9

_TABLE_PARAM_FIELD_SCHEMA = 1 << 0
_TABLE_PARAM_FIELD_HUGE_PAGES = 1 << 2

_CLIENT_FIELD_SERVERS = 1 << 0
_CLIENT_FIELD_CLUSTER_FILE = 1 << 1
_CLIENT_FIELD_SECRET = 1 << 2
_CLIENT_FIELD_READ_ONLY = 1 << 3
_CLIENT_FIELD_TIMEOUT_MS = 1 << 4
_CLIENT_FIELD_READ_MODE = 1 << 5
_CLIENT_FIELD_LOC_CACHE = 1 << 6

OPTIMIZERS = {"sgd": 0, "adagrad": 1, "rowwise_adagrad": 2, "adam": 3,
              "amsgrad": 4, "ftrl": 5}
INITIALIZERS = {"zeros": 0, "constant": 1, "uniform": 2, "normal": 3,
                "trunc_normal": 4}
EVICTIONS = {"none": 0, "lru": 1, "lfu": 2, "score": 3}
READ_MODES = {"auto": 0, "onesided": 1, "rpc": 2}
ELEM_TYPES = {"fp32": 0, "fp16": 1}

# initializer (a, b) when only the type is given: the library's UNIFORM
# default range, 0 for the mean and 0.05 for the spread of the others.
_INIT_DEFAULT_AB = {"zeros": (0.0, 0.0), "constant": (0.0, 0.0),
                    "uniform": (-0.05, 0.05), "normal": (0.0, 0.05),
                    "trunc_normal": (0.0, 0.05)}

_STATUS_NAMES = {
    0: "STRATA_OK", 1: "STRATA_INPROGRESS", -1: "STRATA_ERR_NOMEM",
    -2: "STRATA_ERR_INVALID_PARAM", -3: "STRATA_ERR_NOT_FOUND",
    -4: "STRATA_ERR_EXISTS", -5: "STRATA_ERR_FULL", -6: "STRATA_ERR_IO",
    -7: "STRATA_ERR_CORRUPT", -8: "STRATA_ERR_VERSION",
    -9: "STRATA_ERR_UNSUPPORTED", -10: "STRATA_ERR_TIMEOUT",
    -11: "STRATA_ERR_BUSY", -12: "STRATA_ERR_BAD_VALUE",
    -13: "STRATA_ERR_DIM_MISMATCH", -14: "STRATA_ERR_UNKNOWN_TABLE",
    -15: "STRATA_ERR_PROTOCOL", -16: "STRATA_ERR_AUTH",
    -17: "STRATA_ERR_CONNECTION", -18: "STRATA_ERR_TOO_LARGE",
    -19: "STRATA_ERR_TRUNCATED", -20: "STRATA_ERR_NO_SPACE",
    -21: "STRATA_ERR_READ_ONLY", -22: "STRATA_ERR_STALE",
    -23: "STRATA_ERR_TORN", -24: "STRATA_ERR_INTERNAL",
}

# ---------------------------------------------------------------------------
# C structs (must match include/strata.h field for field; tests/python/
# test_binding.py compares sizeof/offsetof with the C compiler's)
# ---------------------------------------------------------------------------

_c_enum = ctypes.c_int  # C enums with small values are int-sized on every ABI we target


class OptimizerParams(ctypes.Structure):
    """strata_optimizer_params_t"""
    _fields_ = [
        ("field_mask", ctypes.c_uint64),
        ("type", _c_enum),
        ("lr", ctypes.c_float),
        ("eps", ctypes.c_float),
        ("beta1", ctypes.c_float),
        ("beta2", ctypes.c_float),
        ("weight_decay", ctypes.c_float),
        ("initial_accumulator", ctypes.c_float),
        ("l1", ctypes.c_float),
        ("l2", ctypes.c_float),
        ("ftrl_beta", ctypes.c_float),
    ]


class Initializer(ctypes.Structure):
    """strata_initializer_t"""
    _fields_ = [
        ("type", _c_enum),
        ("a", ctypes.c_float),
        ("b", ctypes.c_float),
        ("seed", ctypes.c_uint64),
    ]


class TableSchema(ctypes.Structure):
    """strata_table_schema_t"""
    _fields_ = [
        ("field_mask", ctypes.c_uint64),
        ("name", ctypes.c_char_p),
        ("dim", ctypes.c_uint32),
        ("elem_type", _c_enum),
        ("optimizer", OptimizerParams),
        ("initializer", Initializer),
        ("capacity", ctypes.c_uint64),
        ("admission_threshold", ctypes.c_uint32),
        ("eviction", _c_enum),
        ("ttl_seconds", ctypes.c_uint64),
        ("nshards", ctypes.c_uint32),
    ]


_clock_cb_t = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)


class TableParams(ctypes.Structure):
    """strata_table_params_t"""
    _fields_ = [
        ("field_mask", ctypes.c_uint64),
        ("schema", TableSchema),
        ("clock", _clock_cb_t),
        ("clock_arg", ctypes.c_void_p),
        ("huge_pages", ctypes.c_int),
    ]


class ClientParams(ctypes.Structure):
    """strata_client_params_t"""
    _fields_ = [
        ("field_mask", ctypes.c_uint64),
        ("servers", ctypes.c_char_p),
        ("cluster_file", ctypes.c_char_p),
        ("secret", ctypes.c_void_p),
        ("secret_len", ctypes.c_size_t),
        ("read_only", ctypes.c_int),
        ("timeout_ms", ctypes.c_uint32),
        ("read_mode", _c_enum),
        ("loc_cache_entries", ctypes.c_uint32),
    ]


class ClientStats(ctypes.Structure):
    """strata_client_stats_t"""
    _fields_ = [(f, ctypes.c_uint64) for f in (
        "lookups", "unique_keys", "onesided_hits", "onesided_index",
        "onesided_absent", "rpc_keys", "torn_retries", "stale_locations",
        "pushes", "rpcs", "relayouts", "bytes_sent", "bytes_received",
        "bytes_onesided")]


class TableStats(ctypes.Structure):
    """strata_table_stats_t"""
    _fields_ = [(f, ctypes.c_uint64) for f in (
        "rows", "capacity", "index_buckets", "index_epoch", "lookups",
        "lookup_hits", "inserts", "updates", "evictions", "expirations",
        "not_admitted", "torn_retries", "bytes_rows", "bytes_state",
        "bytes_index")]


def _struct_dict(s):
    return {name: getattr(s, name) for name, _ in s._fields_}


# ---------------------------------------------------------------------------
# Loading libstrata.so
# ---------------------------------------------------------------------------

def _candidates():
    env = os.environ.get("STRATA_LIB")
    if env:
        yield env
        return  # an explicit choice is not second-guessed
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libstrata.so")
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))
    yield os.path.join(repo, "build", "core", "libstrata.so")
    found = ctypes.util.find_library("strata")
    yield found if found else "libstrata.so.0"


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append("%s: no such file" % path)
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append("%s: %s" % (path, e))
    raise ImportError("strata: cannot load libstrata.so (set $STRATA_LIB, or build it with "
                      "scripts/install-python.sh); tried: " + "; ".join(errors))


_lib, library_path = _load()

_u64p = ctypes.POINTER(ctypes.c_uint64)
_f32p = ctypes.POINTER(ctypes.c_float)
_u8p = ctypes.POINTER(ctypes.c_uint8)
_status = ctypes.c_int


def _proto(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_status_string = _proto("strata_status_string", ctypes.c_char_p, _status)
_last_error = _proto("strata_last_error", ctypes.c_char_p)
_version_string = _proto("strata_version_string", ctypes.c_char_p)
_schema_validate = _proto("strata_schema_validate", _status, ctypes.POINTER(TableSchema))

_table_create = _proto("strata_table_create", _status, ctypes.POINTER(TableParams),
                       ctypes.POINTER(ctypes.c_void_p))
_table_destroy = _proto("strata_table_destroy", None, ctypes.c_void_p)
_table_get_schema = _proto("strata_table_get_schema", ctypes.POINTER(TableSchema),
                           ctypes.c_void_p)
_table_lookup = _proto("strata_table_lookup", _status, ctypes.c_void_p, _u64p, ctypes.c_size_t,
                       _f32p, _u8p, ctypes.c_uint32)
_table_apply = _proto("strata_table_apply_gradients", _status, ctypes.c_void_p, _u64p, _f32p,
                      ctypes.c_size_t)
_table_assign = _proto("strata_table_assign", _status, ctypes.c_void_p, _u64p, _f32p,
                       ctypes.c_size_t)
_table_erase = _proto("strata_table_erase", _status, ctypes.c_void_p, _u64p, ctypes.c_size_t,
                      ctypes.POINTER(ctypes.c_size_t))
_table_get_stats = _proto("strata_table_get_stats", _status, ctypes.c_void_p,
                          ctypes.POINTER(TableStats))
_table_save = _proto("strata_table_save", _status, ctypes.c_void_p, ctypes.c_char_p)
_table_load = _proto("strata_table_load", _status, ctypes.c_char_p, ctypes.POINTER(TableParams),
                     ctypes.POINTER(ctypes.c_void_p))

_client_connect = _proto("strata_client_connect", _status, ctypes.POINTER(ClientParams),
                         ctypes.POINTER(ctypes.c_void_p))
_client_destroy = _proto("strata_client_destroy", None, ctypes.c_void_p)
_client_create_table = _proto("strata_client_create_table", _status, ctypes.c_void_p,
                              ctypes.POINTER(TableSchema))
_client_drop_table = _proto("strata_client_drop_table", _status, ctypes.c_void_p,
                            ctypes.c_char_p)
_client_open_table = _proto("strata_client_open_table", _status, ctypes.c_void_p,
                            ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_client_get_stats = _proto("strata_client_get_stats", None, ctypes.c_void_p,
                           ctypes.POINTER(ClientStats))
_rtable_schema = _proto("strata_rtable_schema", ctypes.POINTER(TableSchema), ctypes.c_void_p)
_rtable_lookup = _proto("strata_rtable_lookup", _status, ctypes.c_void_p, _u64p, ctypes.c_size_t,
                        _f32p, _u8p, ctypes.c_uint32)
_rtable_push = _proto("strata_rtable_push", _status, ctypes.c_void_p, _u64p, _f32p,
                      ctypes.c_size_t)
_rtable_get_stats = _proto("strata_rtable_get_stats", _status, ctypes.c_void_p,
                           ctypes.POINTER(TableStats), ctypes.POINTER(ctypes.c_double))


def version():
    """The library's version string, "MAJOR.MINOR.PATCH"."""
    return _version_string().decode()


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class StrataError(Exception):
    """A libstrata call failed.

    Attributes: ``status`` (the negative strata_status_t), ``name`` (e.g.
    ``"STRATA_ERR_READ_ONLY"``), ``message`` (strata_last_error(): the
    library's sentence about this failure), ``call`` (the C function).
    """

    def __init__(self, status, message="", call=None):
        self.status = int(status)
        self.name = _STATUS_NAMES.get(self.status, "STRATA_STATUS_%d" % self.status)
        self.description = _status_string(self.status).decode(errors="replace")
        self.message = message or self.description
        self.call = call
        where = "%s: " % call if call else ""
        super().__init__("%s%s: %s" % (where, self.name, self.message))


def _check(st, call):
    if st < 0:
        msg = _last_error()
        raise StrataError(st, msg.decode(errors="replace") if msg else "", call)
    return st


# ---------------------------------------------------------------------------
# Argument checks: refuse, never guess
# ---------------------------------------------------------------------------

def _as_keys(keys):
    """keys -> a 1-D, C-contiguous, native uint64 ndarray (a view when possible)."""
    arr = keys if isinstance(keys, np.ndarray) else np.asarray(keys)
    if arr.dtype.kind not in "iu":
        raise TypeError("keys must have an integer dtype (uint64 preferred), got %s; "
                        "convert explicitly if the values are integral" % arr.dtype)
    if arr.ndim != 1:
        raise ValueError("keys must be a 1-D array, got shape %s" % (arr.shape,))
    if not arr.flags.c_contiguous:
        raise ValueError("keys must be C-contiguous (got strides %s; no copy is made "
                         "implicitly): pass np.ascontiguousarray(keys)" % (arr.strides,))
    if arr.dtype.kind == "i" and arr.size:
        neg = np.flatnonzero(arr < 0)
        if neg.size:
            raise ValueError("keys must be non-negative: keys[%d] = %d" %
                             (neg[0], int(arr[neg[0]])))
    if arr.dtype == np.uint64 and arr.dtype.isnative and arr.flags.aligned:
        return arr
    if arr.dtype.itemsize == 8 and arr.dtype.isnative and arr.flags.aligned:
        return arr.view(np.uint64)  # int64 checked non-negative: same bits
    return arr.astype(np.uint64)  # narrower ints, other byte order: exact widening


def _as_grads(grads, n, dim):
    arr = grads if isinstance(grads, np.ndarray) else np.asarray(grads)
    if arr.dtype != np.float32:
        hint = ""
        if arr.dtype.kind == "f":
            hint = "; convert with grads.astype(np.float32)"
        raise TypeError("grads must be float32, got %s%s" % (arr.dtype, hint))
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError("grads must have shape [n, dim] = [%d, %d], got %s" %
                         (n, dim, arr.shape))
    if arr.shape[0] != n:
        raise ValueError("grads has %d rows but keys has %d" % (arr.shape[0], n))
    if not arr.flags.c_contiguous:
        raise ValueError("grads must be C-contiguous (no copy is made implicitly): pass "
                         "np.ascontiguousarray(grads)")
    if not arr.dtype.isnative or not arr.flags.aligned:
        raise ValueError("grads must be native-endian and aligned float32")
    return arr


def _as_out(out, n, dim):
    if out is None:
        return np.empty((n, dim), dtype=np.float32)
    if not isinstance(out, np.ndarray):
        raise TypeError("out must be a numpy.ndarray, got %s" % type(out).__name__)
    if out.dtype != np.float32 or not out.dtype.isnative:
        raise TypeError("out must be native float32, got %s" % out.dtype)
    if out.shape != (n, dim):
        raise ValueError("out must have shape [n, dim] = [%d, %d], got %s" % (n, dim, out.shape))
    if not out.flags.c_contiguous or not out.flags.aligned:
        raise ValueError("out must be C-contiguous and aligned")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def _ptr(arr, ctype):
    return arr.ctypes.data_as(ctype)


def _opt_str(x, what):
    if x is None:
        return None
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, bytes):
        return x
    raise TypeError("%s must be str or bytes, got %s" % (what, type(x).__name__))


def _choice(table, value, what):
    if isinstance(value, str) and value.lower() in table:
        return table[value.lower()]
    raise ValueError("%s must be one of %s, got %r" % (what, ", ".join(sorted(table)), value))


def _uint(value, bits, what):
    """value as an int in [0, 2^bits), else ValueError (ctypes would wrap)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError("%s must be an integer, got %r" % (what, value))
    if not 0 <= int(value) < 1 << bits:
        raise ValueError("%s must be in [0, 2^%d), got %d" % (what, bits, int(value)))
    return int(value)


def _make_schema(name, dim, capacity, optimizer="adagrad", lr=None, eps=None, beta1=None,
                 beta2=None, weight_decay=None, initial_accumulator=None, l1=None, l2=None,
                 ftrl_beta=None, init="uniform", init_a=None, init_b=None, seed=None,
                 nshards=None, admission_threshold=None, eviction=None, ttl_seconds=None,
                 elem_type=None):
    """A TableSchema and the bytes object its name points into (keep both alive)."""
    if not isinstance(name, str):
        raise TypeError("table name must be str, got %s" % type(name).__name__)
    bname = name.encode()
    s = TableSchema()
    s.field_mask = _SCHEMA_FIELD_NAME | _SCHEMA_FIELD_DIM | _SCHEMA_FIELD_CAPACITY
    s.name = bname
    # 0 is passed on: the library's check names the allowed range
    s.dim = _uint(dim, 32, "dim")
    s.capacity = _uint(capacity, 64, "capacity")

    o = s.optimizer
    o.type = _choice(OPTIMIZERS, optimizer, "optimizer")
    for value, bit, field in ((lr, _OPT_FIELD_LR, "lr"), (eps, _OPT_FIELD_EPS, "eps"),
                              (beta1, _OPT_FIELD_BETA1, "beta1"),
                              (beta2, _OPT_FIELD_BETA2, "beta2"),
                              (weight_decay, _OPT_FIELD_WEIGHT_DECAY, "weight_decay"),
                              (initial_accumulator, _OPT_FIELD_INITIAL_ACCUMULATOR,
                               "initial_accumulator"),
                              (l1, _OPT_FIELD_L1, "l1"), (l2, _OPT_FIELD_L2, "l2"),
                              (ftrl_beta, _OPT_FIELD_FTRL_BETA, "ftrl_beta")):
        if value is not None:
            setattr(o, field, float(value))
            o.field_mask |= bit
    s.field_mask |= _SCHEMA_FIELD_OPTIMIZER

    itype = _choice(INITIALIZERS, init, "init")
    if not (init.lower() == "uniform" and init_a is None and init_b is None and seed is None):
        da, db = _INIT_DEFAULT_AB[init.lower()]
        s.initializer.type = itype
        s.initializer.a = float(da if init_a is None else init_a)
        s.initializer.b = float(db if init_b is None else init_b)
        s.initializer.seed = _uint(0 if seed is None else seed, 64, "seed")
        s.field_mask |= _SCHEMA_FIELD_INITIALIZER
    if nshards is not None:
        s.nshards = _uint(nshards, 32, "nshards")
        s.field_mask |= _SCHEMA_FIELD_NSHARDS
    if admission_threshold is not None:
        s.admission_threshold = _uint(admission_threshold, 32, "admission_threshold")
        s.field_mask |= _SCHEMA_FIELD_ADMISSION
    if eviction is not None:
        s.eviction = _choice(EVICTIONS, eviction, "eviction")
        s.field_mask |= _SCHEMA_FIELD_EVICTION
    if ttl_seconds is not None:
        s.ttl_seconds = _uint(ttl_seconds, 64, "ttl_seconds")
        s.field_mask |= _SCHEMA_FIELD_TTL
    if elem_type is not None:
        s.elem_type = _choice(ELEM_TYPES, elem_type, "elem_type")
        s.field_mask |= _SCHEMA_FIELD_ELEM_TYPE
    return s, bname


def _schema_dict(sp):
    """A resolved schema (pointer from the library) as a plain dict."""
    s = sp.contents
    inv = lambda table, v: next((k for k, x in table.items() if x == v), v)  # noqa: E731
    o, i = s.optimizer, s.initializer
    return {
        "name": s.name.decode() if s.name else None, "dim": s.dim,
        "elem_type": inv(ELEM_TYPES, s.elem_type), "capacity": s.capacity,
        "nshards": s.nshards, "admission_threshold": s.admission_threshold,
        "eviction": inv(EVICTIONS, s.eviction), "ttl_seconds": s.ttl_seconds,
        "optimizer": {"type": inv(OPTIMIZERS, o.type), "lr": o.lr, "eps": o.eps,
                      "beta1": o.beta1, "beta2": o.beta2, "weight_decay": o.weight_decay,
                      "initial_accumulator": o.initial_accumulator, "l1": o.l1, "l2": o.l2,
                      "ftrl_beta": o.ftrl_beta},
        "initializer": {"type": inv(INITIALIZERS, i.type), "a": i.a, "b": i.b, "seed": i.seed},
    }


# ---------------------------------------------------------------------------
# Cluster client
# ---------------------------------------------------------------------------

class Client:
    """A connection to every server of a cluster (strata_client_t).

    ``Client(servers="host:port,host:port", secret=b"...", read_only=False,
    timeout_ms=10000, read_mode="auto")``; or ``cluster_file=PATH`` instead
    of servers.  ``read_mode`` is "auto", "onesided" or "rpc".  A read-only
    client (inference) may look up but never create rows or push.

    Use as a context manager or call ``close()``; tables from ``table()``
    are invalid once their client is closed (their calls raise
    ValueError).  One thread at a time inside the library: calls on one
    Client are serialized by a lock.
    """

    def __init__(self, servers=None, secret=None, read_only=False, timeout_ms=10000,
                 read_mode="auto", cluster_file=None, loc_cache_entries=None):
        self._handle = None
        self._lock = threading.RLock()
        p = ClientParams()
        keep = []
        if servers is None and cluster_file is None:
            raise ValueError("Client needs servers=\"host:port,...\" or cluster_file=PATH")
        if servers is not None:
            if not isinstance(servers, (str, bytes)):
                servers = ",".join(servers)  # a list of "host:port"
            p.servers = _opt_str(servers, "servers")
            p.field_mask |= _CLIENT_FIELD_SERVERS
        if cluster_file is not None:
            p.cluster_file = _opt_str(os.fspath(cluster_file), "cluster_file")
            p.field_mask |= _CLIENT_FIELD_CLUSTER_FILE
        if secret is not None:
            b = _opt_str(secret, "secret")
            buf = ctypes.create_string_buffer(b, len(b))
            keep.append(buf)
            p.secret = ctypes.cast(buf, ctypes.c_void_p)
            p.secret_len = len(b)
            p.field_mask |= _CLIENT_FIELD_SECRET
        p.read_only = 1 if read_only else 0
        p.field_mask |= _CLIENT_FIELD_READ_ONLY
        if timeout_ms is not None:
            p.timeout_ms = _uint(timeout_ms, 32, "timeout_ms")
            p.field_mask |= _CLIENT_FIELD_TIMEOUT_MS
        p.read_mode = _choice(READ_MODES, read_mode, "read_mode")
        p.field_mask |= _CLIENT_FIELD_READ_MODE
        if loc_cache_entries is not None:
            p.loc_cache_entries = _uint(loc_cache_entries, 32, "loc_cache_entries")
            p.field_mask |= _CLIENT_FIELD_LOC_CACHE
        h = ctypes.c_void_p()
        _check(_client_connect(ctypes.byref(p), ctypes.byref(h)), "strata_client_connect")
        self._handle = h
        self.read_only = bool(read_only)

    def _h(self):
        if self._handle is None:
            raise ValueError("strata.Client is closed")
        return self._handle

    def create_table(self, name, dim, capacity, optimizer="adagrad", lr=None, eps=None,
                     init="uniform", init_a=None, init_b=None, seed=None, shards_per_server=1,
                     **kw):
        """Create a table on every server.

        capacity is the cluster's total; shards_per_server is each server's
        writer-shard count.  Optimizer hyperparameters not given keep the
        library's defaults (docs/optimizers.md): lr, eps, beta1, beta2,
        weight_decay, initial_accumulator, l1, l2, ftrl_beta.  init is
        "zeros", "constant", "uniform", "normal" or "trunc_normal" with
        init_a, init_b and seed as in docs/initializers.md.  Other keywords:
        admission_threshold, eviction ("none", "lru", "lfu", "score"),
        ttl_seconds.  Raises StrataError (EXISTS, INVALID_PARAM, READ_ONLY…).
        """
        s, keep = _make_schema(name, dim, capacity, optimizer=optimizer, lr=lr, eps=eps,
                               init=init, init_a=init_a, init_b=init_b, seed=seed,
                               nshards=shards_per_server, **kw)
        with self._lock:
            _check(_client_create_table(self._h(), ctypes.byref(s)),
                   "strata_client_create_table")
        del keep

    def drop_table(self, name):
        """Drop a table on every server (StrataError UNKNOWN_TABLE if none had it)."""
        with self._lock:
            _check(_client_drop_table(self._h(), _opt_str(name, "name")),
                   "strata_client_drop_table")

    def table(self, name):
        """Open a table: a :class:`Table` valid while this client is open."""
        with self._lock:
            h = ctypes.c_void_p()
            _check(_client_open_table(self._h(), _opt_str(name, "name"), ctypes.byref(h)),
                   "strata_client_open_table")
            return Table(self, h)

    def stats(self):
        """The client's counters (strata_client_stats_t) as a dict."""
        st = ClientStats()
        with self._lock:
            _client_get_stats(self._h(), ctypes.byref(st))
        return _struct_dict(st)

    def close(self):
        """Disconnect and free the client and its tables. Idempotent."""
        with self._lock:
            if self._handle is not None:
                h, self._handle = self._handle, None
                _client_destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def closed(self):
        return self._handle is None


class Table:
    """A table of a cluster (strata_rtable_t); made by ``Client.table(name)``."""

    def __init__(self, client, handle):
        self._client = client
        self._handle = handle
        sp = _rtable_schema(handle)
        self.schema = _schema_dict(sp)
        self.name = self.schema["name"]
        self.dim = int(self.schema["dim"])

    @property
    def client(self):
        return self._client

    @property
    def read_only(self):
        return self._client.read_only

    def _h(self):
        self._client._h()  # raises when the client is closed
        return self._handle

    def lookup(self, keys, init_missing=False, out=None):
        """Rows of keys: ``(rows float32 [n, dim], found uint8 [n])``.

        Absent keys get the initializer's values (found ROW_MISSING); with
        init_missing=True they are created (ROW_CREATED; not on a read-only
        client).  out, when given, must be a C-contiguous float32 [n, dim]
        array and is filled and returned.
        """
        k = _as_keys(keys)
        n = k.shape[0]
        rows = _as_out(out, n, self.dim)
        found = np.empty(n, dtype=np.uint8)
        flags = LOOKUP_INIT_MISSING if init_missing else 0
        with self._client._lock:
            _check(_rtable_lookup(self._h(), _ptr(k, _u64p), n, _ptr(rows, _f32p),
                                  _ptr(found, _u8p), flags), "strata_rtable_lookup")
        return rows, found

    def push(self, keys, grads):
        """Push gradients float32 [n, dim] for keys; duplicate keys are summed
        into one optimizer step per key, applied on the servers."""
        k = _as_keys(keys)
        n = k.shape[0]
        g = _as_grads(grads, n, self.dim)
        with self._client._lock:
            _check(_rtable_push(self._h(), _ptr(k, _u64p), _ptr(g, _f32p), n),
                   "strata_rtable_push")

    def stats(self):
        """The table's counters summed over every server, plus "server_cpu_s"."""
        st = TableStats()
        cpu = ctypes.c_double()
        with self._client._lock:
            _check(_rtable_get_stats(self._h(), ctypes.byref(st), ctypes.byref(cpu)),
                   "strata_rtable_get_stats")
        d = _struct_dict(st)
        d["server_cpu_s"] = cpu.value
        return d

    def __repr__(self):
        return "strata.Table(%r, dim=%d)" % (self.name, self.dim)


# ---------------------------------------------------------------------------
# In-process table
# ---------------------------------------------------------------------------

class LocalTable:
    """An in-process table (strata_table_t) with the same schema options as
    ``Client.create_table``; nshards is the writer-shard count.

    ``LocalTable.load(path)`` restores a snapshot written by ``save``.
    Unlike a remote Table's push, ``apply_gradients`` applies duplicate keys
    as separate steps; ``push`` sums duplicates first (one step per key),
    as the cluster client does.
    """

    def __init__(self, name, dim, capacity, optimizer="adagrad", lr=None, eps=None,
                 init="uniform", init_a=None, init_b=None, seed=None, nshards=1,
                 huge_pages=False, _handle=None, **kw):
        self._handle = None
        if _handle is None:
            params = TableParams()
            params.schema, keep = _make_schema(name, dim, capacity, optimizer=optimizer, lr=lr,
                                               eps=eps, init=init, init_a=init_a, init_b=init_b,
                                               seed=seed, nshards=nshards, **kw)
            params.huge_pages = 1 if huge_pages else 0
            params.field_mask = _TABLE_PARAM_FIELD_SCHEMA | _TABLE_PARAM_FIELD_HUGE_PAGES
            h = ctypes.c_void_p()
            _check(_table_create(ctypes.byref(params), ctypes.byref(h)), "strata_table_create")
            del keep
            _handle = h
        self._handle = _handle
        self.schema = _schema_dict(_table_get_schema(_handle))
        self.name = self.schema["name"]
        self.dim = int(self.schema["dim"])

    @classmethod
    def load(cls, path, huge_pages=False):
        params = TableParams()
        params.huge_pages = 1 if huge_pages else 0
        params.field_mask = _TABLE_PARAM_FIELD_HUGE_PAGES
        h = ctypes.c_void_p()
        _check(_table_load(_opt_str(os.fspath(path), "path"), ctypes.byref(params),
                           ctypes.byref(h)), "strata_table_load")
        return cls(None, None, None, _handle=h)

    def _h(self):
        if self._handle is None:
            raise ValueError("strata.LocalTable is closed")
        return self._handle

    def lookup(self, keys, init_missing=False, out=None):
        """As Table.lookup, in process."""
        k = _as_keys(keys)
        n = k.shape[0]
        rows = _as_out(out, n, self.dim)
        found = np.empty(n, dtype=np.uint8)
        flags = LOOKUP_INIT_MISSING if init_missing else 0
        _check(_table_lookup(self._h(), _ptr(k, _u64p), n, _ptr(rows, _f32p),
                             _ptr(found, _u8p), flags), "strata_table_lookup")
        return rows, found

    def apply_gradients(self, keys, grads):
        """One optimizer step per (key, row of grads), duplicates as separate steps."""
        k = _as_keys(keys)
        n = k.shape[0]
        g = _as_grads(grads, n, self.dim)
        _check(_table_apply(self._h(), _ptr(k, _u64p), _ptr(g, _f32p), n),
               "strata_table_apply_gradients")

    def push(self, keys, grads):
        """As Table.push: duplicates summed into one step per key, then applied."""
        k = _as_keys(keys)
        n = k.shape[0]
        g = _as_grads(grads, n, self.dim)
        uk, inv = np.unique(k, return_inverse=True)
        summed = np.zeros((uk.shape[0], self.dim), dtype=np.float32)
        np.add.at(summed, inv, g)
        _check(_table_apply(self._h(), _ptr(uk, _u64p), _ptr(summed, _f32p), uk.shape[0]),
               "strata_table_apply_gradients")

    def assign(self, keys, rows):
        """Overwrite (or create) rows; their optimizer state is reset."""
        k = _as_keys(keys)
        n = k.shape[0]
        r = _as_grads(rows, n, self.dim)
        _check(_table_assign(self._h(), _ptr(k, _u64p), _ptr(r, _f32p), n),
               "strata_table_assign")

    def erase(self, keys):
        """Remove keys; returns how many were present."""
        k = _as_keys(keys)
        erased = ctypes.c_size_t()
        _check(_table_erase(self._h(), _ptr(k, _u64p), k.shape[0], ctypes.byref(erased)),
               "strata_table_erase")
        return erased.value

    def save(self, path):
        """Write a snapshot atomically (strata_table_save)."""
        _check(_table_save(self._h(), _opt_str(os.fspath(path), "path")), "strata_table_save")

    def stats(self):
        st = TableStats()
        _check(_table_get_stats(self._h(), ctypes.byref(st)), "strata_table_get_stats")
        return _struct_dict(st)

    def close(self):
        """Free the table. No other call on it may be running. Idempotent."""
        if self._handle is not None:
            h, self._handle = self._handle, None
            _table_destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "strata.LocalTable(%r, dim=%d)" % (self.name, self.dim)
