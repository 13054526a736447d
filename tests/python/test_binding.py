#!/usr/bin/python3
"""The ctypes binding (client/python/strata): struct layouts against the C
compiler, cluster round trips against the in-process table, and every kind
of bad input raising a clear Python exception.

Run: /usr/bin/python3 tests/python/test_binding.py (exit 0/1/77).
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_testutil as tu  # noqa: E402

strata = tu.import_strata()
import numpy as np  # noqa: E402

CLUSTER = None  # started in main(), stopped in its finally

# The Python mirror of each C struct: (ctypes class, C type name).
STRUCTS = [
    (strata.OptimizerParams, "strata_optimizer_params_t"),
    (strata.Initializer, "strata_initializer_t"),
    (strata.TableSchema, "strata_table_schema_t"),
    (strata.TableParams, "strata_table_params_t"),
    (strata.ClientParams, "strata_client_params_t"),
    (strata.ClientStats, "strata_client_stats_t"),
    (strata.TableStats, "strata_table_stats_t"),
]

SCHEMA = dict(optimizer="adagrad", lr=0.1, eps=1e-10, init="uniform", init_a=-0.5,
              init_b=0.5, seed=1234)
DIM = 8


def _members(cls, prefix=""):
    """(member designator, offset) of every field, nested structs expanded."""
    out = []
    for name, ftype in cls._fields_:
        off = getattr(cls, name).offset
        out.append((prefix + name, off))
        if isinstance(ftype, type) and issubclass(ftype, ctypes.Structure):
            out.extend((d, off + o) for d, o in _members(ftype, prefix + name + "."))
    return out


class StructLayout(unittest.TestCase):
    def test_sizes_and_offsets_match_c(self):
        cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler")
        lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "strata.h"',
                 "int main(void) {"]
        expect = []
        for cls, cname in STRUCTS:
            lines.append('printf("%s sizeof %%zu\\n", sizeof(%s));' % (cname, cname))
            expect.append("%s sizeof %d" % (cname, ctypes.sizeof(cls)))
            lines.append('printf("%s alignof %%zu\\n", _Alignof(%s));' % (cname, cname))
            expect.append("%s alignof %d" % (cname, ctypes.alignment(cls)))
            for member, off in _members(cls):
                lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' %
                             (cname, member, cname, member))
                expect.append("%s.%s %d" % (cname, member, off))
        lines += ["return 0;", "}"]
        d = tempfile.mkdtemp(prefix="strata-layout-")
        try:
            src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
            with open(src, "w") as f:
                f.write("\n".join(lines) + "\n")
            subprocess.run([cc, "-std=c11", "-I", os.path.join(tu.REPO, "include"), src,
                            "-o", exe], check=True)
            got = subprocess.run([exe], check=True, capture_output=True,
                                 text=True).stdout.split("\n")[:-1]
        finally:
            shutil.rmtree(d, ignore_errors=True)
        self.assertEqual(len(got), len(expect))
        for g, e in zip(got, expect):
            self.assertEqual(g, e, "C says %r, ctypes says %r" % (g, e))


class LocalTableTests(unittest.TestCase):
    def test_schema_resolved(self):
        with strata.LocalTable("loc", DIM, 100, **SCHEMA) as t:
            s = t.schema
            self.assertEqual(s["dim"], DIM)
            self.assertEqual(s["optimizer"]["type"], "adagrad")
            self.assertAlmostEqual(s["optimizer"]["lr"], 0.1, places=6)
            self.assertEqual(s["initializer"]["seed"], 1234)
            self.assertEqual(s["initializer"]["type"], "uniform")

    def test_bad_schema_is_strata_error(self):
        with self.assertRaises(strata.StrataError) as cm:
            strata.LocalTable("bad", DIM, 100, optimizer="sgd", lr=-1.0)
        e = cm.exception
        self.assertEqual(e.name, "STRATA_ERR_INVALID_PARAM")
        self.assertEqual(e.status, -2)
        self.assertIn("lr", e.message)
        with self.assertRaisesRegex(ValueError, "optimizer must be one of"):
            strata.LocalTable("bad", DIM, 100, optimizer="adamw")
        with self.assertRaises(strata.StrataError) as cm:  # the library's range check
            strata.LocalTable("bad", 0, 100)
        self.assertEqual(cm.exception.name, "STRATA_ERR_INVALID_PARAM")
        self.assertIn("dim", cm.exception.message)
        with self.assertRaisesRegex(ValueError, r"dim must be in \[0, 2\^32\), got -1"):
            strata.LocalTable("bad", -1, 100)
        with self.assertRaisesRegex(TypeError, "capacity must be an integer"):
            strata.LocalTable("bad", DIM, 10.5)
        with self.assertRaisesRegex(ValueError, "seed must be in"):
            strata.LocalTable("bad", DIM, 100, seed=-1)
        with self.assertRaisesRegex(ValueError, "init must be one of"):
            strata.LocalTable("bad", DIM, 100, init="xavier")
        with self.assertRaises(strata.StrataError) as cm:
            strata.LocalTable("bad name!", DIM, 100)
        self.assertEqual(cm.exception.name, "STRATA_ERR_INVALID_PARAM")

    def test_push_sums_duplicates_apply_does_not(self):
        keys = np.array([5, 5, 6], dtype=np.uint64)
        g = np.ones((3, DIM), dtype=np.float32)
        with strata.LocalTable("a", DIM, 100, optimizer="adagrad", lr=0.1) as a, \
                strata.LocalTable("b", DIM, 100, optimizer="adagrad", lr=0.1) as b:
            a.push(keys, g)
            b.apply_gradients(keys, g)
            ra, _ = a.lookup(keys)
            rb, _ = b.lookup(keys)
            # key 6: one step each; key 5: Adagrad with one summed step
            # differs from two steps
            np.testing.assert_array_equal(ra[2], rb[2])
            self.assertFalse(np.allclose(ra[0], rb[0]))
            self.assertEqual(a.stats()["updates"], 2)
            self.assertEqual(b.stats()["updates"], 3)

    def test_save_load(self):
        d = tempfile.mkdtemp(prefix="strata-py-snap-")
        try:
            keys = np.arange(10, dtype=np.uint64)
            with strata.LocalTable("snap", DIM, 100, **SCHEMA) as t:
                rows, _ = t.lookup(keys, init_missing=True)
                t.save(os.path.join(d, "snap.strata"))
            with strata.LocalTable.load(os.path.join(d, "snap.strata")) as t2:
                r2, found = t2.lookup(keys)
                np.testing.assert_array_equal(rows, r2)
                self.assertTrue(np.all(found == strata.ROW_FOUND))
            with self.assertRaises(strata.StrataError) as cm:
                strata.LocalTable.load(os.path.join(d, "missing"))
            self.assertEqual(cm.exception.name, "STRATA_ERR_NOT_FOUND")
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_closed_local_table(self):
        t = strata.LocalTable("c", DIM, 100)
        t.close()
        t.close()  # idempotent
        with self.assertRaisesRegex(ValueError, "closed"):
            t.lookup([1])


class ClusterTests(unittest.TestCase):
    def setUp(self):
        self.client = strata.Client(CLUSTER.servers, secret=tu.SECRET)

    def tearDown(self):
        self.client.close()

    def _fresh(self, name, **kw):
        try:
            self.client.drop_table(name)
        except strata.StrataError as e:
            self.assertEqual(e.name, "STRATA_ERR_UNKNOWN_TABLE")
        args = dict(SCHEMA)
        args.update(kw)
        self.client.create_table(name, DIM, 10000, shards_per_server=2, **args)
        return self.client.table(name)

    def test_round_trip_matches_local_table(self):
        t = self._fresh("rt")
        self.assertEqual(t.dim, DIM)
        self.assertEqual(t.schema["nshards"], 2 * CLUSTER.n)
        loc = strata.LocalTable("rt", DIM, 10000, **SCHEMA)
        rng = np.random.default_rng(1)
        keys = rng.choice(1 << 40, size=300, replace=False).astype(np.uint64)

        # absent: initializer values, not created
        r0, f0 = t.lookup(keys)
        l0, g0 = loc.lookup(keys)
        np.testing.assert_array_equal(r0, l0)
        self.assertTrue(np.all(f0 == strata.ROW_MISSING))
        self.assertTrue(np.all(g0 == strata.ROW_MISSING))

        # created by init_missing: the same deterministic rows
        r1, f1 = t.lookup(keys, init_missing=True)
        l1, _ = loc.lookup(keys, init_missing=True)
        np.testing.assert_array_equal(r1, l1)
        np.testing.assert_array_equal(r1, r0)
        self.assertTrue(np.all(f1 == strata.ROW_CREATED))
        _, f2 = t.lookup(keys)
        self.assertTrue(np.all(f2 == strata.ROW_FOUND))

        # pushes with duplicates: one summed Adagrad step per key, 5 rounds
        for step in range(5):
            idx = rng.integers(0, keys.shape[0], size=500)
            k = np.ascontiguousarray(keys[idx])
            g = rng.standard_normal((k.shape[0], DIM)).astype(np.float32)
            t.push(k, g)
            loc.push(k, g)
        r3, _ = t.lookup(keys)
        l3, _ = loc.lookup(keys)
        diff = float(np.max(np.abs(r3 - l3)))
        print("round trip: max |remote - local| after 5 pushes = %.3g" % diff,
              file=sys.stderr)
        # duplicates may be summed in another order: allow last-bit effects
        np.testing.assert_allclose(r3, l3, rtol=0, atol=1e-6)
        self.assertFalse(np.allclose(r3, r1))

        # out= is filled and returned
        out = np.empty((keys.shape[0], DIM), dtype=np.float32)
        r4, _ = t.lookup(keys, out=out)
        self.assertIs(r4, out)
        np.testing.assert_array_equal(out, r3)

        st = t.stats()
        self.assertEqual(st["rows"], keys.shape[0])
        self.assertGreater(st["updates"], 0)
        self.assertIn("server_cpu_s", st)
        cs = self.client.stats()
        self.assertGreater(cs["pushes"], 0)
        self.assertGreaterEqual(cs["lookups"], 4 * keys.shape[0])
        loc.close()
        self.client.drop_table("rt")

    def test_key_dtypes(self):
        t = self._fresh("dt")
        base, _ = t.lookup(np.array([0, 1, 2, 127], dtype=np.uint64))
        for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
                   np.uint64, ">u8", ">i4"):
            rows, _ = t.lookup(np.array([0, 1, 2, 127], dtype=dt))
            np.testing.assert_array_equal(rows, base, err_msg=str(dt))
        rows, _ = t.lookup([0, 1, 2, 127])  # a list converts (int64)
        np.testing.assert_array_equal(rows, base)
        big = np.array([2**64 - 1, 2**63], dtype=np.uint64)
        rows, found = t.lookup(big, init_missing=True)
        self.assertEqual(rows.shape, (2, DIM))
        self.assertTrue(np.all(found == strata.ROW_CREATED))
        rows, found = t.lookup(np.array([], dtype=np.uint64))
        self.assertEqual(rows.shape, (0, DIM))
        t.push(np.array([], dtype=np.uint64), np.zeros((0, DIM), dtype=np.float32))
        self.client.drop_table("dt")

    def test_bad_input(self):
        t = self._fresh("bad")
        g = np.zeros((4, DIM), dtype=np.float32)
        keys = np.arange(4, dtype=np.uint64)
        cases = [
            # (exception, regex, callable)
            (TypeError, "integer dtype.*float64", lambda: t.lookup(np.arange(4.0))),
            (TypeError, "integer dtype.*float32",
             lambda: t.push(np.arange(4, dtype=np.float32), g)),
            (TypeError, "integer dtype.*bool", lambda: t.lookup(np.ones(4, dtype=bool))),
            (TypeError, "integer dtype", lambda: t.lookup(["a", "b"])),
            (ValueError, r"non-negative: keys\[1\] = -3",
             lambda: t.lookup(np.array([1, -3, 4], dtype=np.int64))),
            (ValueError, "non-negative",
             lambda: t.push(np.array([-1, 0, 1, 2], dtype=np.int8), g)),
            (ValueError, "1-D.*shape \\(2, 2\\)",
             lambda: t.lookup(np.arange(4, dtype=np.uint64).reshape(2, 2))),
            (ValueError, "1-D.*shape \\(\\)", lambda: t.lookup(np.uint64(3))),
            (ValueError, "C-contiguous.*ascontiguousarray",
             lambda: t.lookup(np.arange(8, dtype=np.uint64)[::2])),
            (ValueError, "C-contiguous",
             lambda: t.push(np.arange(8, dtype=np.uint64)[::2], g)),
            (ValueError, "shape \\[n, dim\\] = \\[4, 8\\]",
             lambda: t.push(keys, np.zeros((4, DIM + 1), dtype=np.float32))),
            (ValueError, "shape \\[n, dim\\]",
             lambda: t.push(keys, np.zeros(4 * DIM, dtype=np.float32))),
            (TypeError, "float32, got float64.*astype\\(np.float32\\)",
             lambda: t.push(keys, np.zeros((4, DIM)))),
            (TypeError, "float32, got int64", lambda: t.push(keys, np.zeros((4, DIM), int))),
            (ValueError, "grads has 3 rows but keys has 4",
             lambda: t.push(keys, np.zeros((3, DIM), dtype=np.float32))),
            (ValueError, "grads must be C-contiguous",
             lambda: t.push(keys, np.zeros((DIM, 4), dtype=np.float32).T)),
            (ValueError, "out must have shape",
             lambda: t.lookup(keys, out=np.zeros((3, DIM), dtype=np.float32))),
            (TypeError, "out must be native float32",
             lambda: t.lookup(keys, out=np.zeros((4, DIM)))),
            (ValueError, "out must be C-contiguous",
             lambda: t.lookup(keys, out=np.zeros((DIM, 4), dtype=np.float32).T)),
        ]
        for exc, regex, fn in cases:
            with self.subTest(regex=regex):
                with self.assertRaisesRegex(exc, regex):
                    fn()
        # small non-negative signed keys are fine
        t.lookup(np.array([1, 2, 3], dtype=np.int8))
        # NaN is the library's check: nothing applied
        bad = np.zeros((4, DIM), dtype=np.float32)
        bad[2, 3] = np.nan
        with self.assertRaises(strata.StrataError) as cm:
            t.push(keys, bad)
        self.assertEqual(cm.exception.name, "STRATA_ERR_BAD_VALUE")
        self.assertTrue(cm.exception.message)
        self.assertEqual(t.stats()["updates"], 0)
        self.client.drop_table("bad")

    def test_library_errors(self):
        self._fresh("dup")
        with self.assertRaises(strata.StrataError) as cm:
            self.client.create_table("dup", DIM, 100)
        self.assertEqual(cm.exception.name, "STRATA_ERR_EXISTS")
        self.assertIn("STRATA_ERR_EXISTS", str(cm.exception))
        self.client.drop_table("dup")
        with self.assertRaises(strata.StrataError) as cm:
            self.client.table("no_such_table")
        self.assertEqual(cm.exception.name, "STRATA_ERR_UNKNOWN_TABLE")
        with self.assertRaises(strata.StrataError) as cm:
            self.client.drop_table("no_such_table")
        self.assertEqual(cm.exception.name, "STRATA_ERR_UNKNOWN_TABLE")
        with self.assertRaises(strata.StrataError) as cm:
            strata.Client(CLUSTER.servers, secret=b"wrong secret", timeout_ms=5000)
        self.assertEqual(cm.exception.name, "STRATA_ERR_AUTH")
        with self.assertRaisesRegex(ValueError, "read_mode must be one of"):
            strata.Client(CLUSTER.servers, secret=tu.SECRET, read_mode="fast")
        with self.assertRaisesRegex(ValueError, "needs servers"):
            strata.Client()

    def test_read_modes(self):
        t = self._fresh("modes")
        keys = np.arange(50, dtype=np.uint64)
        ref, _ = t.lookup(keys, init_missing=True)
        for mode in ("auto", "onesided", "rpc"):
            with strata.Client(CLUSTER.servers, secret=tu.SECRET, read_only=True,
                               read_mode=mode) as c:
                rows, found = c.table("modes").lookup(keys)
                np.testing.assert_array_equal(rows, ref, err_msg=mode)
                self.assertTrue(np.all(found == strata.ROW_FOUND), mode)
        self.client.drop_table("modes")

    def test_read_only_client(self):
        t = self._fresh("ro")
        keys = np.arange(10, dtype=np.uint64)
        ref, _ = t.lookup(keys, init_missing=True)
        with strata.Client(CLUSTER.servers, secret=tu.SECRET, read_only=True) as ro:
            rt = ro.table("ro")
            self.assertTrue(rt.read_only)
            rows, _ = rt.lookup(keys)
            np.testing.assert_array_equal(rows, ref)
            with self.assertRaises(strata.StrataError) as cm:
                rt.push(keys, np.zeros((10, DIM), dtype=np.float32))
            self.assertEqual(cm.exception.name, "STRATA_ERR_READ_ONLY")
            self.assertEqual(cm.exception.status, -21)
            self.assertIn("read-only", cm.exception.message)
            with self.assertRaises(strata.StrataError) as cm:
                rt.lookup(keys + 100, init_missing=True)
            self.assertEqual(cm.exception.name, "STRATA_ERR_READ_ONLY")
            with self.assertRaises(strata.StrataError) as cm:
                ro.create_table("ro2", DIM, 100)
            self.assertEqual(cm.exception.name, "STRATA_ERR_READ_ONLY")
        self.client.drop_table("ro")

    def test_threads_share_a_client(self):
        # the binding serializes calls on one Client (one UCX worker)
        t = self._fresh("thr")
        keys = np.arange(200, dtype=np.uint64)
        ref, _ = t.lookup(keys, init_missing=True)
        errors = []

        def worker(seed):
            try:
                rng = np.random.default_rng(seed)
                for _ in range(50):
                    idx = rng.integers(0, 200, size=64)
                    rows, _ = t.lookup(np.ascontiguousarray(keys[idx]))
                    np.testing.assert_array_equal(rows, ref[idx])
            except Exception as e:  # reported below, in the test's thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(errors, [])
        self.client.drop_table("thr")

    def test_closed_client(self):
        c = strata.Client(CLUSTER.servers, secret=tu.SECRET)
        c.create_table("closed", DIM, 100)
        t = c.table("closed")
        c.drop_table("closed")
        c.close()
        self.assertTrue(c.closed)
        c.close()  # idempotent
        for fn in (lambda: t.lookup([1]),
                   lambda: t.push([1], np.zeros((1, DIM), dtype=np.float32)),
                   lambda: t.stats(), lambda: c.table("closed"), lambda: c.stats(),
                   lambda: c.create_table("x", DIM, 100), lambda: c.drop_table("x")):
            with self.assertRaisesRegex(ValueError, "strata.Client is closed"):
                fn()


def main():
    global CLUSTER
    # Two servers, so keys route across servers and shards.
    CLUSTER = tu.Cluster(2)
    with CLUSTER:
        rc = tu.run(__name__)
    sys.exit(rc)


if __name__ == "__main__":
    main()
