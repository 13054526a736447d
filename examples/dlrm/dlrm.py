#!/usr/bin/python3
"""examples/dlrm/dlrm.py — a DLRM-style CTR model trained data-parallel,
its embeddings in Strata.

    mpirun --allow-run-as-root --oversubscribe --mca pml ob1 \\
           --mca btl self,vader,tcp -np 2 /usr/bin/python3 \\
           examples/dlrm/dlrm.py --local [--steps 300] [--batch 256]

or examples/dlrm/run.sh, which checks the prerequisites, builds what is
missing and runs exactly that.

Data: a synthetic click log. Each sample has 13 dense features (standard
normal) and 26 sparse fields; field f draws ids from a Zipf(a) law over
--vocab ids (numpy's generator, truncated Zipf by inverse CDF), the
popular ids scattered by a fixed per-field permutation. The Strata key of
id i of field f is ``f << 56 | i``: one u64 key space, one table, fields
never collide. Labels come from a hidden "true" model fixed by --seed:
``y ~ Bernoulli(sigmoid(w . dense + sum_f effect[f][id_f] + b))``, so the
loss can fall and the held-out AUC rise toward the true model's own AUC
(printed as ``oracle_auc``, the ceiling).

Model: ONE Strata table (dim 16, Adagrad on the servers, created by rank
0) read through strata.torch.Embedding ([B, 26] keys in one lookup per
step; with --multi-hot K > 1, strata.torch.EmbeddingBag over K ids per
field); a bottom MLP over the dense features (13 -> 64 -> 16); DLRM's
dot-product interaction of the 27 vectors (351 pairwise dots, plus the
bottom output); a top MLP (367 -> 64 -> 32 -> 1) giving a logit;
BCEWithLogitsLoss.

Data parallel over the ranks of mpirun (torch.distributed, gloo; rank and
size from OMPI_COMM_WORLD_RANK/SIZE, MASTER_ADDR default 127.0.0.1,
MASTER_PORT from the environment, --master-port, or derived from Open
MPI's job id). Each step every rank draws its own batch; the dense
gradients are averaged with one all_reduce of a flattened buffer and the
dense model steps with Adam; the embedding gradients go to Strata from
each rank (pushed inside loss.backward(), applied by the servers'
Adagrad), scaled by 1/world_size so that the step corresponds to the
averaged gradient, as the dense one does. (Each rank's push is its own
optimizer step on the rows it touched; Adagrad's step is nearly
invariant to the scale, SGD's is not.)

--local: rank 0 starts 2 strata-servers on 127.0.0.1 (UCX_TLS=sm,self,tcp,
UCX_NET_DEVICES=lo) and broadcasts their addresses; they are stopped at
exit, whatever the exit (finally, SIGTERM handler, and PR_SET_PDEATHSIG
in the servers for a rank 0 killed outright).
--servers H:P,H:P --secret S: use a running cluster (rank 0 creates the
table; one that exists already is an error unless --recreate drops it).

Output (rank 0): a progress line on stderr (step/total, loss,
samples/s), then the final train loss, held-out AUC, samples/s and the
time per step broken down (lookup = embedding forward, compute = MLP
forward and backward, push = embedding backward, i.e. the Strata push,
allreduce = the dense gradients' all_reduce, including the wait for the
slower rank, data = batch generation),
and one JSON line on stdout.

--check: exit 1 unless the loss fell (the mean over the last fifth of the
steps at least --min-drop = 0.02 below the mean over the first fifth),
every loss was finite, the held-out AUC reached --min-auc = 0.6 (chance
is 0.5) and (--local) the servers exited 0 on SIGTERM. Exit 77 when
numpy or torch is missing.
"""

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
SKIP = 77

try:
    import numpy as np
    import torch
    import torch.distributed as dist
except ImportError as e:  # exit 77: CTest's skip
    print("dlrm.py: SKIP: %s (use /usr/bin/python3 with python3-numpy and python3-torch)" % e,
          file=sys.stderr)
    sys.exit(SKIP)

if os.path.join(REPO, "client", "python") not in sys.path:
    sys.path.append(os.path.join(REPO, "client", "python"))  # PYTHONPATH wins
import strata  # noqa: E402
import strata.torch  # noqa: E402

NFIELDS = 26
NDENSE = 13
DIM = 16
UCX_LOCAL = {"UCX_TLS": "sm,self,tcp", "UCX_NET_DEVICES": "lo"}
LOCAL_SECRET = "dlrm-example-secret"


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="DLRM-style CTR training, data parallel under mpirun, embeddings in Strata.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--local", action="store_true",
                       help="rank 0 starts 2 strata-servers on 127.0.0.1 and stops them at exit")
    where.add_argument("--servers", metavar="H:P,H:P",
                       help="a running cluster, servers in index order (with --secret)")
    p.add_argument("--secret", default=None,
                   help="the cluster's shared secret (default: $STRATA_SECRET)")
    p.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    p.add_argument("--batch", type=int, default=256, help="samples per rank per step (default 256)")
    p.add_argument("--vocab", type=int, default=20000, help="ids per field (default 20000)")
    p.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of the ids (default 1.1)")
    p.add_argument("--multi-hot", type=int, default=1, metavar="K",
                   help="ids per field per sample; K > 1 uses EmbeddingBag(sum) (default 1)")
    p.add_argument("--table", default="dlrm_emb", help="Strata table name (default dlrm_emb)")
    p.add_argument("--recreate", action="store_true",
                   help="--servers: drop the table first when it exists (else that is an error)")
    p.add_argument("--emb-lr", type=float, default=0.05, help="server-side Adagrad lr (0.05)")
    p.add_argument("--lr", type=float, default=2e-3, help="dense Adam lr (default 2e-3)")
    p.add_argument("--eval-samples", type=int, default=20000,
                   help="held-out samples for the AUC (default 20000)")
    p.add_argument("--seed", type=int, default=1234, help="hidden model and data seed")
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank (default 1)")
    p.add_argument("--master-port", type=int, default=None,
                   help="torch.distributed port (default: $MASTER_PORT, else from the MPI job id)")
    p.add_argument("--server-bin", default=None,
                   help="strata-server for --local (default $STRATA_SERVER_BIN, else "
                        "build/server/strata-server)")
    p.add_argument("--nservers", type=int, default=2, help="servers --local starts (default 2)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless the loss fell by --min-drop, stayed finite and the AUC "
                        "reached --min-auc")
    p.add_argument("--min-drop", type=float, default=0.02,
                   help="--check: least fall of the loss, first fifth of the steps to the last "
                        "(default 0.02)")
    p.add_argument("--min-auc", type=float, default=0.6,
                   help="--check: least held-out AUC (default 0.6; chance is 0.5)")
    a = p.parse_args(argv)
    for name in ("steps", "batch", "vocab", "multi_hot", "eval_samples", "threads", "nservers"):
        if getattr(a, name) < 1:
            p.error("--%s must be at least 1" % name.replace("_", "-"))
    if a.vocab >= 1 << 56:
        p.error("--vocab must be below 2^56 (ids live in the key's low 56 bits)")
    if not a.zipf > 0:
        p.error("--zipf must be positive")
    if a.servers is not None and a.secret is None:
        a.secret = os.environ.get("STRATA_SECRET")
        if a.secret is None:
            p.error("--servers needs --secret (or $STRATA_SECRET)")
    return a


# ---------------------------------------------------------------------------
# Synthetic data from a hidden model
# ---------------------------------------------------------------------------

class SyntheticCTR:
    """Samples (dense float32 [n, 13], keys int64 [n, 26*K], labels float32
    [n], true logits float64 [n]) from a hidden logistic model fixed by
    seed."""

    def __init__(self, vocab, zipf, multi_hot, seed):
        rng = np.random.default_rng([seed, 0])
        self.vocab, self.k = vocab, multi_hot
        ranks = np.arange(1, vocab + 1, dtype=np.float64)
        cdf = np.cumsum(ranks ** -zipf)
        self.cdf = cdf / cdf[-1]
        # the popular ids of a field are scattered, not 0, 1, 2, ...
        self.perm = np.stack([rng.permutation(vocab) for _ in range(NFIELDS)])
        # hidden model: dense part ~ N(0, 1), the 26 id effects ~ N(0, 1.5^2) in all
        self.w = (rng.standard_normal(NDENSE) / math.sqrt(NDENSE)).astype(np.float64)
        self.effect = rng.normal(0.0, 1.5 / math.sqrt(NFIELDS), (NFIELDS, vocab))
        self.bias = -0.5
        self.field_base = (np.arange(NFIELDS, dtype=np.int64) << 56)

    def sample(self, rng, n):
        dense = rng.standard_normal((n, NDENSE))
        u = rng.random((n, NFIELDS, self.k))
        r = np.minimum(np.searchsorted(self.cdf, u, side="right"), self.vocab - 1)
        ids = self.perm[np.arange(NFIELDS)[None, :, None], r]  # [n, 26, K]
        eff = self.effect[np.arange(NFIELDS)[None, :, None], ids].mean(axis=2).sum(axis=1)
        logit = dense @ self.w + eff + self.bias
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
        keys = (self.field_base[None, :, None] | ids).reshape(n, NFIELDS * self.k)
        return dense.astype(np.float32), np.ascontiguousarray(keys, dtype=np.int64), y, logit


def auc_score(y, score):
    """ROC AUC by the Mann-Whitney U statistic (average ranks for ties)."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    npos = int(y.sum())
    nneg = y.size - npos
    if npos == 0 or nneg == 0:
        return float("nan")
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each value
    r = avg_rank[inv]
    return float((r[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------

class TimedTable:
    """A strata.Table that adds up the time spent in lookup and push (the
    push runs inside loss.backward(): this is how the backward's Strata
    part is told from the MLP's)."""

    def __init__(self, table):
        self.table = table
        self.dim = table.dim
        self.lookup_s = 0.0
        self.push_s = 0.0

    @property
    def read_only(self):
        return self.table.read_only

    def lookup(self, keys, init_missing=False, out=None):
        t = time.perf_counter()
        try:
            return self.table.lookup(keys, init_missing=init_missing, out=out)
        finally:
            self.lookup_s += time.perf_counter() - t

    def push(self, keys, grads):
        t = time.perf_counter()
        try:
            self.table.push(keys, grads)
        finally:
            self.push_s += time.perf_counter() - t

    def __repr__(self):
        return repr(self.table)


def mlp(sizes, last_relu):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_relu:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class DLRM(torch.nn.Module):
    """Bottom MLP, dot interaction, top MLP. The embedding module is held
    apart (self.emb) so that the loop can time its forward."""

    def __init__(self, table, multi_hot, grad_scale):
        super().__init__()
        self.k = multi_hot
        self.grad_scale = grad_scale
        if multi_hot == 1:
            self.emb = strata.torch.Embedding(table)
        else:
            self.emb = strata.torch.EmbeddingBag(table, mode="sum")
        self.bottom = mlp([NDENSE, 64, DIM], last_relu=True)
        nvec = NFIELDS + 1
        li, lj = torch.tril_indices(nvec, nvec, offset=-1)
        self.register_buffer("li", li, persistent=False)
        self.register_buffer("lj", lj, persistent=False)
        self.top = mlp([DIM + nvec * (nvec - 1) // 2, 64, 32, 1], last_relu=False)

    def embed(self, keys):
        """keys int64 [B, 26*K] -> [B, 26, dim]; the gradient flowing back
        is scaled by grad_scale (1/world_size) before the push."""
        b = keys.shape[0]
        if self.k == 1:
            e = self.emb(keys)
        else:
            e = self.emb(keys.reshape(b * NFIELDS, self.k))
        e = e.reshape(b, NFIELDS, DIM)
        if self.grad_scale != 1.0 and e.requires_grad:
            e.register_hook(lambda g: g * self.grad_scale)
        return e

    def dense_forward(self, dense, e):
        x = self.bottom(dense)                            # [B, D]
        z = torch.cat([x.unsqueeze(1), e], dim=1)          # [B, 27, D]
        inter = torch.bmm(z, z.transpose(1, 2))            # [B, 27, 27]
        feats = torch.cat([x, inter[:, self.li, self.lj]], dim=1)
        return self.top(feats).squeeze(1)                  # logits [B]

    def dense_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("emb.")]


# ---------------------------------------------------------------------------
# Local servers (--local, rank 0)
# ---------------------------------------------------------------------------

def _die_with_parent():
    """preexec_fn: the server gets SIGTERM when this process dies."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class LocalServers:
    """n strata-servers on 127.0.0.1, port 0, a temp dir of logs."""

    def __init__(self, binary, n, secret):
        self.binary, self.n, self.secret = binary, n, secret
        self.procs, self.logs = [], []
        self.dir = None
        self.servers = ""

    def start(self):
        if not os.path.exists(self.binary):
            raise RuntimeError("no strata-server at %s (build it: ninja -C build strata-server, "
                               "or set STRATA_SERVER_BIN / --server-bin)" % self.binary)
        self.dir = tempfile.mkdtemp(prefix="strata-dlrm-")
        env = dict(os.environ, **UCX_LOCAL)
        ports = []
        for i in range(self.n):
            portfile = os.path.join(self.dir, "port.%d" % i)
            log = os.path.join(self.dir, "server.%d.log" % i)
            self.logs.append(log)
            with open(log, "wb") as logf:
                self.procs.append(subprocess.Popen(
                    [self.binary, "--listen", "127.0.0.1:0", "--port-file", portfile,
                     "--index", str(i), "--nservers", str(self.n), "--secret", self.secret],
                    stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, env=env,
                    preexec_fn=_die_with_parent))
            ports.append(self._wait_port(self.procs[-1], portfile, log))
        self.servers = ",".join("127.0.0.1:%d" % p for p in ports)
        return self.servers

    @staticmethod
    def _wait_port(p, portfile, log):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with open(portfile) as f:
                    text = f.read().split()
                if text and int(text[0]) > 0:
                    return int(text[0])
            except (OSError, ValueError):
                pass
            if p.poll() is not None:
                with open(log, errors="replace") as f:
                    raise RuntimeError("strata-server exited with %s during start; log:\n%s" %
                                       (p.returncode, f.read()[-2000:]))
            time.sleep(0.01)
        raise RuntimeError("strata-server did not write %s in 30 s" % portfile)

    def stop(self):
        """SIGTERM all, SIGKILL after 10 s. True when every server exited 0."""
        ok = True
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for i, p in enumerate(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.returncode != 0:
                ok = False
                with open(self.logs[i], errors="replace") as f:
                    sys.stderr.write("dlrm.py: strata-server %d exited with %s; log tail:\n%s\n" %
                                     (i, p.returncode, f.read()[-2000:]))
        self.procs = []
        if ok and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            sys.stderr.write("dlrm.py: server logs kept in %s\n" % self.dir)
        return ok


# ---------------------------------------------------------------------------
# torch.distributed from Open MPI's environment
# ---------------------------------------------------------------------------

def dist_init(args):
    env = os.environ
    rank = int(env.get("OMPI_COMM_WORLD_RANK", env.get("RANK", "0")))
    world = int(env.get("OMPI_COMM_WORLD_SIZE", env.get("WORLD_SIZE", "1")))
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    if args.master_port is not None:
        env["MASTER_PORT"] = str(args.master_port)
    elif "MASTER_PORT" not in env:
        # every rank of one mpirun sees the same job id: a port of its own
        job = env.get("OMPI_MCA_ess_base_jobid", env.get("PMIX_NAMESPACE", "0"))
        env["MASTER_PORT"] = str(20000 + zlib.crc32(job.encode()) % 20000)
    if env["MASTER_ADDR"] in ("127.0.0.1", "localhost"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    import datetime
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    return rank, world


def bcast(obj, rank):
    box = [obj if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

class Progress:
    """A \\r progress line on stderr, at most every 0.2 s."""

    def __init__(self, total, enabled):
        self.total, self.enabled = total, enabled
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def update(self, step, loss, sps, force=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 2.0):
            return
        self.last = now
        width = 30
        done = int(width * step / self.total)
        bar = "#" * done + "." * (width - done)
        end = "" if self.tty else "\n"
        sys.stderr.write("\r[%s] step %d/%d  loss %.4f  %.0f samples/s%s" %
                         (bar, step, self.total, loss, sps, end))
        sys.stderr.flush()

    def close(self):
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def open_table(args, rank, servers, secret):
    client = strata.Client(servers, secret=secret)
    status = "ok"
    if rank == 0:
        try:
            if args.recreate:
                try:
                    client.drop_table(args.table)
                except strata.StrataError as e:
                    if e.name != "STRATA_ERR_UNKNOWN_TABLE":
                        raise
            client.create_table(args.table, dim=DIM, capacity=2 * NFIELDS * args.vocab,
                                optimizer="adagrad", lr=args.emb_lr, init="uniform",
                                init_a=-0.05, init_b=0.05, seed=args.seed, shards_per_server=2)
        except strata.StrataError as e:
            status = "%s" % e
            if e.name == "STRATA_ERR_EXISTS":
                status += (" (the cluster has a table %r already: pass --recreate to drop it, "
                           "or --table NAME)" % args.table)
    status = bcast(status, rank)  # rank 1 opens the table only once it exists
    if status != "ok":
        client.close()
        raise RuntimeError("creating the table: %s" % status)
    return client, TimedTable(client.table(args.table))


def evaluate(model, data, args):
    """AUC and log loss on a held-out set (fixed seed, drawn apart from the
    training stream); read-only lookups (eval mode): unseen ids read as the
    initializer's values."""
    rng = np.random.default_rng([args.seed, 1 << 20])
    dense, keys, y, true_logit = data.sample(rng, args.eval_samples)
    model.eval()
    scores = []
    with torch.no_grad():
        for i in range(0, args.eval_samples, 4096):
            e = model.embed(torch.from_numpy(keys[i:i + 4096]))
            scores.append(model.dense_forward(torch.from_numpy(dense[i:i + 4096]), e).numpy())
    model.train()
    s = np.concatenate(scores).astype(np.float64)
    p = np.clip(1.0 / (1.0 + np.exp(-s)), 1e-7, 1 - 1e-7)
    logloss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return auc_score(y, s), auc_score(y, true_logit), logloss, float(y.mean())


def train(args, rank, world, table):
    torch.manual_seed(args.seed)  # the same dense init on every rank
    data = SyntheticCTR(args.vocab, args.zipf, args.multi_hot, args.seed)
    model = DLRM(table, args.multi_hot, grad_scale=1.0 / world)
    dense_params = model.dense_parameters()
    opt = torch.optim.Adam(dense_params, lr=args.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng([args.seed, 1, rank])
    flat = torch.zeros(sum(p.numel() for p in dense_params))
    t_data = t_lookup = t_fwdbwd = t_allreduce = t_opt = 0.0
    push0 = table.push_s
    losses = np.zeros(args.steps)
    prog = Progress(args.steps, rank == 0)
    dist.barrier()
    t_start = time.perf_counter()
    for step in range(args.steps):
        t0 = time.perf_counter()
        dense_np, keys_np, y_np, _ = data.sample(rng, args.batch)
        dense, keys, y = (torch.from_numpy(dense_np), torch.from_numpy(keys_np),
                          torch.from_numpy(y_np))
        t1 = time.perf_counter()
        e = model.embed(keys)                       # Strata lookup (init_missing)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model.dense_forward(dense, e), y)
        loss.backward()                             # MLP backward + Strata push
        t3 = time.perf_counter()
        if world > 1:
            off = 0
            for p in dense_params:
                n = p.numel()
                flat[off:off + n].copy_(p.grad.reshape(-1))
                off += n
            dist.all_reduce(flat)
            flat.div_(world)
            off = 0
            for p in dense_params:
                n = p.numel()
                p.grad.copy_(flat[off:off + n].view_as(p.grad))
                off += n
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        t_data += t1 - t0
        t_lookup += t2 - t1
        t_fwdbwd += t3 - t2
        t_allreduce += t4 - t3
        t_opt += t5 - t4
        losses[step] = loss.item()
        if not math.isfinite(losses[step]):
            raise FloatingPointError("loss is %r at step %d on rank %d" %
                                     (losses[step], step, rank))
        elapsed = time.perf_counter() - t_start
        prog.update(step + 1, losses[step], (step + 1) * args.batch * world / elapsed,
                    force=step + 1 == args.steps)
    wall = time.perf_counter() - t_start
    prog.close()
    push = table.push_s - push0
    cs = table.table.client.stats()  # training only: taken before the evaluation
    # the global loss curve: every rank's per-step loss averaged
    curve = torch.from_numpy(losses.copy())
    dist.all_reduce(curve)
    curve = (curve / world).numpy()
    times = torch.tensor([wall, t_data, t_lookup, t_fwdbwd - push, push, t_allreduce, t_opt],
                         dtype=torch.float64)
    dist.all_reduce(times)  # the ranks' mean
    times = (times / world).numpy()
    if rank == 0:  # only rank 0 reports
        auc, oracle_auc, eval_logloss, eval_ctr = evaluate(model, data, args)
    else:
        auc = oracle_auc = eval_logloss = eval_ctr = float("nan")
    return dict(curve=curve, times=times, auc=auc, oracle_auc=oracle_auc,
                eval_logloss=eval_logloss, eval_ctr=eval_ctr,
                client={k: cs[k] for k in ("lookups", "unique_keys", "onesided_hits",
                                           "onesided_index", "onesided_absent", "rpc_keys",
                                           "pushes", "rpcs")})


def report(args, world, r, servers_ok):
    curve, t = r["curve"], r["times"]
    steps = len(curve)
    k = max(1, steps // 5)
    first, last = float(curve[:k].mean()), float(curve[-k:].mean())
    wall = t[0]
    sps = steps * args.batch * world / wall
    ms = lambda x: 1000.0 * x / steps  # noqa: E731
    breakdown = {"data": ms(t[1]), "lookup": ms(t[2]), "compute": ms(t[3]), "push": ms(t[4]),
                 "allreduce": ms(t[5]), "optimizer": ms(t[6])}
    finite = bool(np.all(np.isfinite(curve)))
    ok = (finite and first - last >= args.min_drop and r["auc"] >= args.min_auc and
          servers_ok is not False)
    print("dlrm: %d ranks x batch %d, %d steps in %.1f s: %.0f samples/s" %
          (world, args.batch, steps, wall, sps))
    print("dlrm: train loss %.4f (first %d steps) -> %.4f (last %d steps); final step %.4f" %
          (first, k, last, k, float(curve[-1])))
    print("dlrm: held-out AUC %.4f (the hidden true model's: %.4f), log loss %.4f, CTR %.3f" %
          (r["auc"], r["oracle_auc"], r["eval_logloss"], r["eval_ctr"]))
    print("dlrm: per step (ms, mean of ranks): " +
          ", ".join("%s %.2f" % (name, v) for name, v in breakdown.items()))
    print(json.dumps({
        "example": "dlrm", "ok": ok, "ranks": world, "batch_per_rank": args.batch,
        "steps": steps, "fields": NFIELDS, "dense": NDENSE, "dim": DIM,
        "multi_hot": args.multi_hot, "vocab": args.vocab, "zipf": args.zipf,
        "train_loss_first": round(first, 5), "train_loss_final": round(last, 5),
        "auc": round(r["auc"], 5), "oracle_auc": round(r["oracle_auc"], 5),
        "eval_logloss": round(r["eval_logloss"], 5), "samples_per_s": round(sps, 1),
        "wall_s": round(wall, 3),
        "step_ms": {name: round(v, 3) for name, v in breakdown.items()},
        "rank0_client": r["client"], "servers_exit_ok": servers_ok}))
    sys.stdout.flush()
    why = []
    if not finite:
        why.append("a loss was not finite")
    if not first - last >= args.min_drop:
        why.append("the loss fell by %.4f (%.4f -> %.4f), less than --min-drop %.4f" %
                   (first - last, first, last, args.min_drop))
    if not r["auc"] >= args.min_auc:
        why.append("AUC %.4f is below --min-auc %.4f" % (r["auc"], args.min_auc))
    if servers_ok is False:
        why.append("a strata-server did not exit 0")
    return ok, why


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the finally blocks


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    if args.local:
        for k, v in UCX_LOCAL.items():  # the client reads these at connect
            os.environ.setdefault(k, v)
    rank, world = dist_init(args)
    cluster = None
    client = None
    servers_ok = None
    rc = 1
    try:
        if args.local:
            msg = None
            if rank == 0:
                binary = (args.server_bin or os.environ.get("STRATA_SERVER_BIN") or
                          os.path.join(REPO, "build", "server", "strata-server"))
                cluster = LocalServers(binary, args.nservers, LOCAL_SECRET)
                try:
                    msg = {"servers": cluster.start()}
                    print("dlrm.py: %d strata-servers at %s (UCX_TLS=%s)" %
                          (args.nservers, msg["servers"], os.environ["UCX_TLS"]), file=sys.stderr)
                except Exception as e:
                    msg = {"error": str(e)}
            msg = bcast(msg, rank)
            if "error" in msg:
                raise RuntimeError("starting the local servers: %s" % msg["error"])
            servers, secret = msg["servers"], LOCAL_SECRET
        else:
            servers, secret = args.servers, args.secret
        client, table = open_table(args, rank, servers, secret)
        r = train(args, rank, world, table)
        dist.barrier()  # every rank is done with the servers
        client.close()
        client = None
        if cluster is not None:
            servers_ok = cluster.stop()
            cluster = None
        if rank == 0:
            ok, why = report(args, world, r, servers_ok)
            if args.check and not ok:
                print("dlrm.py: CHECK FAILED: %s" % "; ".join(why), file=sys.stderr)
                rc = 1
            else:
                rc = 0
        else:
            rc = 0
        rc = int(bcast(rc, rank))
    except (Exception, KeyboardInterrupt) as e:
        print("\ndlrm.py: rank %d: %s: %s" % (rank, type(e).__name__, e), file=sys.stderr)
        rc = 1
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.stop()
    if rc == 0:
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    # a failed rank leaves at once: mpirun then ends the others
    os._exit(rc) if rc else sys.exit(0)


if __name__ == "__main__":
    main()
