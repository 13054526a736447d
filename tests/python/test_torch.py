#!/usr/bin/python3
"""strata.torch against torch.nn: the same tiny model trained 100 steps
with torch.nn.Embedding/EmbeddingBag(sparse=True) and a torch optimizer,
and with strata.torch.Embedding/EmbeddingBag on a table whose server-side
optimizer has the same settings, must end with the same weights (1e-5).

Run: /usr/bin/python3 tests/python/test_torch.py (exit 0/1/77).
"""

import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_testutil as tu  # noqa: E402

strata = tu.import_strata(need_torch=True)
import numpy as np  # noqa: E402
import torch  # noqa: E402

import strata.torch as stt  # noqa: E402

CLUSTER = None
NUM = 40      # ids 0..NUM-1, the table's keys
DIM = 8
STEPS = 100
ATOL = 1e-5
LR = {"sgd": 0.05, "adagrad": 0.1}
RESULTS = []  # (case, max abs diff) for the summary line


def torch_optimizer(kind, params):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=LR["sgd"])
    return torch.optim.Adagrad(params, lr=LR["adagrad"], lr_decay=0, eps=1e-10,
                               initial_accumulator_value=0)


def strata_options(kind):
    opts = dict(optimizer=kind, lr=LR[kind], init="uniform", init_a=-0.5, init_b=0.5, seed=99)
    if kind == "adagrad":
        opts.update(eps=1e-10, initial_accumulator=0.0)
    return opts


def batches(kind, seed):
    """STEPS deterministic batches: (input, offsets or None, target)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(STEPS):
        if kind == "embedding":
            # 6 samples of 5 ids from a small range: many duplicates
            ids = torch.from_numpy(rng.integers(0, NUM, size=(6, 5)))
            target = torch.from_numpy(rng.standard_normal((6, DIM)).astype(np.float32))
            out.append((ids, None, target))
        elif kind == "bag1d":
            sizes = rng.integers(0, 6, size=7)  # bags of 0..5 ids (empty ones too)
            sizes[0] = max(sizes[0], 1)
            ids = torch.from_numpy(rng.integers(0, NUM, size=int(sizes.sum())))
            offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)[:-1]]))
            target = torch.from_numpy(rng.standard_normal((7, DIM)).astype(np.float32))
            out.append((ids, offsets, target))
        else:  # bag2d: 5 bags of 4 ids
            ids = torch.from_numpy(rng.integers(0, NUM, size=(5, 4)))
            target = torch.from_numpy(rng.standard_normal((5, DIM)).astype(np.float32))
            out.append((ids, None, target))
    return out


def forward(module, kind, ids, offsets):
    if kind == "embedding":
        return module(ids).sum(dim=1)  # [B, L, DIM] -> [B, DIM]
    if offsets is not None:
        return module(ids, offsets)
    return module(ids)


class Compare(unittest.TestCase):
    def setUp(self):
        self.client = strata.Client(CLUSTER.servers, secret=tu.SECRET)

    def tearDown(self):
        self.client.close()

    def make_table(self, name, opt, backend):
        if backend == "local":
            return strata.LocalTable(name, DIM, 1000, nshards=2, **strata_options(opt))
        try:
            self.client.drop_table(name)
        except strata.StrataError:
            pass
        self.client.create_table(name, DIM, 1000, shards_per_server=2, **strata_options(opt))
        return self.client.table(name)

    def run_case(self, kind, opt, mode=None, backend="remote"):
        name = "%s_%s_%s_%s" % (kind, mode or "x", opt, backend)
        table = self.make_table(name, opt, backend)
        all_ids = np.arange(NUM, dtype=np.int64)
        init_rows, found = table.lookup(all_ids, init_missing=True)
        self.assertTrue(np.all(found == strata.ROW_CREATED))

        if kind == "embedding":
            ref = torch.nn.Embedding(NUM, DIM, sparse=True)
            ours = stt.Embedding(table)
        else:
            ref = torch.nn.EmbeddingBag(NUM, DIM, mode=mode, sparse=True)
            ours = stt.EmbeddingBag(table, mode=mode)
        with torch.no_grad():
            ref.weight.copy_(torch.from_numpy(init_rows))
        ref_opt = torch_optimizer(opt, ref.parameters())
        ours.train()

        for ids, offsets, target in batches(kind, seed=7):
            ref_opt.zero_grad()
            loss = torch.nn.functional.mse_loss(forward(ref, kind, ids, offsets), target)
            loss.backward()
            ref_opt.step()

            loss2 = torch.nn.functional.mse_loss(forward(ours, kind, ids, offsets), target)
            loss2.backward()  # pushes; the store applies the step now

        final, _ = table.lookup(all_ids)
        want = ref.weight.detach().numpy()
        diff = float(np.max(np.abs(final - want)))
        moved = float(np.max(np.abs(want - init_rows)))
        RESULTS.append((name, diff, moved))
        print("%s: max |strata - torch| = %.3g (weights moved up to %.3g)" %
              (name, diff, moved), file=sys.stderr)
        self.assertGreater(moved, 1e-2, "the model did not train")
        np.testing.assert_allclose(final, want, rtol=0, atol=ATOL)
        self.assertIsNone(ours._strata_anchor.grad)
        if backend == "local":
            table.close()
        else:
            self.client.drop_table(name)

    def test_embedding_sgd(self):
        self.run_case("embedding", "sgd")

    def test_embedding_adagrad(self):
        self.run_case("embedding", "adagrad")

    def test_embedding_adagrad_local_table(self):
        self.run_case("embedding", "adagrad", backend="local")

    def test_bag_sum_sgd(self):
        self.run_case("bag1d", "sgd", mode="sum")

    def test_bag_sum_adagrad(self):
        self.run_case("bag1d", "adagrad", mode="sum")

    def test_bag_mean_sgd(self):
        self.run_case("bag1d", "sgd", mode="mean")

    def test_bag_mean_adagrad(self):
        self.run_case("bag1d", "adagrad", mode="mean")

    def test_bag2d_mean_adagrad(self):
        self.run_case("bag2d", "adagrad", mode="mean")

    def test_bag2d_sum_sgd(self):
        self.run_case("bag2d", "sgd", mode="sum")


class ImportOrder(unittest.TestCase):
    def test_strata_before_torch(self):
        # libstrata.so once linked Debian's libjemalloc.so.2, which defines
        # operator new/delete: torch imported after strata aborted with
        # "free(): invalid pointer". The shared library now uses libc's
        # allocator; this keeps it that way.
        code = ("import strata, torch\n"
                "x = torch.randn(64, 64)\n"
                "s = str(x @ x)\n"
                "t = strata.LocalTable('o', 4, 10)\n"
                "t.lookup([1, 2], init_missing=True)\n"
                "print('import order ok')\n")
        env = dict(os.environ, PYTHONPATH=os.path.join(tu.REPO, "client", "python"),
                   PYTHONDONTWRITEBYTECODE="1")
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, 0, "rc %d: %s" % (p.returncode, p.stderr[-2000:]))
        self.assertIn("import order ok", p.stdout)


class Semantics(unittest.TestCase):
    def setUp(self):
        self.client = strata.Client(CLUSTER.servers, secret=tu.SECRET)
        try:
            self.client.drop_table("sem")
        except strata.StrataError:
            pass
        self.client.create_table("sem", DIM, 1000, **strata_options("sgd"))
        self.table = self.client.table("sem")

    def tearDown(self):
        self.client.drop_table("sem")
        self.client.close()

    def test_shapes(self):
        emb = stt.Embedding(self.table)
        self.assertEqual(emb(torch.tensor([[1, 2, 3], [4, 5, 6]])).shape, (2, 3, DIM))
        self.assertEqual(emb(torch.tensor(7)).shape, (DIM,))
        self.assertEqual(emb(torch.zeros(0, dtype=torch.long)).shape, (0, DIM))
        out = emb(torch.tensor([[1, 2], [2, 1]]))
        self.assertEqual(out.dtype, torch.float32)
        torch.testing.assert_close(out[0, 0], out[1, 1])

    def test_eval_mode_is_read_only(self):
        emb = stt.Embedding(self.table)
        emb.eval()
        ids = torch.arange(100, 110)
        out = emb(ids)
        self.assertFalse(out.requires_grad)
        self.assertEqual(self.table.stats()["rows"], 0)  # nothing created
        emb.train()
        out = emb(ids)
        self.assertTrue(out.requires_grad)
        self.assertEqual(self.table.stats()["rows"], 10)
        with torch.no_grad():  # no graph, so no push; rows still created
            self.assertFalse(emb(torch.arange(110, 115)).requires_grad)
        self.assertEqual(self.table.stats()["updates"], 0)

    def test_read_only_client_module(self):
        keys = torch.arange(0, 5)
        stt.Embedding(self.table)(keys)  # create them
        with strata.Client(CLUSTER.servers, secret=tu.SECRET, read_only=True) as ro:
            emb = stt.Embedding(ro.table("sem"))  # training mode, but read-only
            out = emb(torch.arange(0, 8))
            self.assertFalse(out.requires_grad)
            want, _ = self.table.lookup(np.arange(8))
            np.testing.assert_array_equal(out.numpy(), want)
        self.assertEqual(self.table.stats()["rows"], 5)

    def test_backward_pushes_summed_gradient(self):
        emb = stt.Embedding(self.table)
        ids = torch.tensor([3, 3, 3, 9])
        before, _ = self.table.lookup(np.array([3, 9]), init_missing=True)
        emb(ids).sum().backward()
        after, _ = self.table.lookup(np.array([3, 9]))
        # SGD: row 3 got one step with gradient 3 (three uses), row 9 with 1
        np.testing.assert_allclose(after[0], before[0] - LR["sgd"] * 3.0, atol=1e-6)
        np.testing.assert_allclose(after[1], before[1] - LR["sgd"] * 1.0, atol=1e-6)
        self.assertEqual(self.table.stats()["updates"], 2)

    def test_padding_idx(self):
        emb = stt.Embedding(self.table, padding_idx=0)
        out = emb(torch.tensor([0, 1, 0, 2]))
        self.assertTrue(torch.all(out[0] == 0) and torch.all(out[2] == 0))
        self.assertFalse(torch.all(out[1] == 0))
        out.sum().backward()
        _, found = self.table.lookup(np.array([0, 1, 2]))
        self.assertEqual(list(found), [strata.ROW_MISSING, strata.ROW_FOUND, strata.ROW_FOUND])
        self.assertEqual(self.table.stats()["updates"], 2)

    def test_bad_input(self):
        emb = stt.Embedding(self.table)
        with self.assertRaisesRegex(TypeError, "integer tensor"):
            emb(torch.tensor([1.0, 2.0]))
        with self.assertRaisesRegex(ValueError, "non-negative"):
            emb(torch.tensor([1, -2]))
        with self.assertRaisesRegex(TypeError, "torch.Tensor"):
            emb([1, 2])
        bag = stt.EmbeddingBag(self.table, mode="sum")
        with self.assertRaisesRegex(ValueError, "offsets is required"):
            bag(torch.tensor([1, 2]))
        with self.assertRaisesRegex(ValueError, "offsets must be None"):
            bag(torch.tensor([[1, 2]]), torch.tensor([0]))
        with self.assertRaisesRegex(ValueError, "start at 0"):
            bag(torch.tensor([1, 2, 3]), torch.tensor([1, 2]))
        with self.assertRaisesRegex(ValueError, "start at 0"):
            bag(torch.tensor([1, 2, 3]), torch.tensor([0, 2, 1]))
        with self.assertRaisesRegex(ValueError, "mode must be"):
            stt.EmbeddingBag(self.table, mode="max")
        with self.assertRaisesRegex(TypeError, "strata.Table or strata.LocalTable"):
            stt.Embedding(object())


def main():
    global CLUSTER
    torch.manual_seed(0)
    CLUSTER = tu.Cluster(2)
    with CLUSTER:
        rc = tu.run(__name__)
    if RESULTS:
        print("max abs differences: " + ", ".join("%s %.3g" % (n, d) for n, d, _ in RESULTS),
              file=sys.stderr)
    sys.exit(rc)


if __name__ == "__main__":
    main()
