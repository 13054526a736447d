"""strata.torch — PyTorch modules whose weights live in a Strata table.

``Embedding(table)`` and ``EmbeddingBag(table, mode)`` behave like
``torch.nn.Embedding`` / ``torch.nn.EmbeddingBag`` with ``sparse=True``,
except that the weights are rows of a Strata table (a remote
``strata.Table`` or an in-process ``strata.LocalTable``) and the optimizer
runs in the store:

* forward looks the ids up (ids are the table's keys, so they must be
  non-negative).  In training mode on a writable table, absent keys are
  created (``init_missing``); in eval mode, or on a read-only client, the
  lookup is read-only and absent keys read as the initializer's values.
* backward pushes the gradient rows for the looked-up ids to the store,
  synchronously, inside ``loss.backward()``: the library sums duplicate
  ids into one step per key and the table's optimizer applies it then.
  By the time ``backward()`` returns the store's rows are updated.  So do
  NOT give these modules' parameters to a torch optimizer and do not
  expect ``optimizer.step()`` to touch them; the one parameter they
  register (``_strata_anchor``, zero elements, never given a gradient)
  exists only so autograd runs their backward.  ``zero_grad`` does not
  apply either: a backward is a step.  Calling backward twice on the same
  graph (``retain_graph=True``) pushes twice.

The lookups and pushes release the GIL (ctypes).  Tensors on another
device are moved to the CPU for the store and the result moved back.
"""

import numpy as np
import torch

import strata

__all__ = ["Embedding", "EmbeddingBag"]


def _keys_of(ids):
    """A flat, C-contiguous int64 numpy view (or copy) of an id tensor."""
    if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError("ids must be an integer tensor (LongTensor), got %s" % ids.dtype)
    flat = ids.detach().reshape(-1)
    if flat.device.type != "cpu":
        flat = flat.cpu()
    return flat.to(torch.int64).contiguous().numpy()


class _Lookup(torch.autograd.Function):
    """rows[i] = table[keys[i]]; backward pushes grad rows to the table."""

    @staticmethod
    def forward(ctx, anchor, keys, table, init_missing, push, device):
        rows, _ = table.lookup(keys, init_missing=init_missing)
        ctx.table = table
        ctx.keys = keys
        ctx.push = push
        return torch.from_numpy(rows).to(device)

    @staticmethod
    def backward(ctx, grad_rows):
        if ctx.push and ctx.keys.shape[0]:
            g = grad_rows.detach()
            if g.device.type != "cpu":
                g = g.cpu()
            g = g.to(torch.float32).contiguous().numpy()
            ctx.table.push(ctx.keys, g)
        return None, None, None, None, None, None


class _StrataModule(torch.nn.Module):
    def __init__(self, table):
        super().__init__()
        if not hasattr(table, "lookup") or not hasattr(table, "dim"):
            raise TypeError("table must be a strata.Table or strata.LocalTable, got %s" %
                            type(table).__name__)
        self.table = table
        self.embedding_dim = int(table.dim)
        # Zero elements, requires grad: makes autograd call _Lookup.backward.
        self._strata_anchor = torch.nn.Parameter(torch.zeros(0))

    def _writable(self):
        return not getattr(self.table, "read_only", False)

    def _rows(self, keys, device):
        """Rows [len(keys), dim] for a numpy int64 key array."""
        train = self.training and self._writable()
        if train and torch.is_grad_enabled():
            return _Lookup.apply(self._strata_anchor, keys, self.table, True, True, device)
        rows, _ = self.table.lookup(keys, init_missing=train)
        return torch.from_numpy(rows).to(device)

    def extra_repr(self):
        return "table=%r, dim=%d" % (self.table, self.embedding_dim)


class Embedding(_StrataModule):
    """``Embedding(table, padding_idx=None)``: forward(ids) -> [*ids.shape, dim].

    ids: an integer tensor of any shape, the table's keys.  padding_idx (a
    key) reads as zeros, is never created in the table and gets no
    gradient, as in torch.nn.Embedding.
    """

    def __init__(self, table, padding_idx=None):
        super().__init__(table)
        if padding_idx is not None and int(padding_idx) < 0:
            raise ValueError("padding_idx must be a non-negative key, got %r" % (padding_idx,))
        self.padding_idx = None if padding_idx is None else int(padding_idx)

    def forward(self, ids):
        if not isinstance(ids, torch.Tensor):
            raise TypeError("ids must be a torch.Tensor, got %s" % type(ids).__name__)
        keys = _keys_of(ids)
        shape = tuple(ids.shape) + (self.embedding_dim,)
        if self.padding_idx is None:
            return self._rows(keys, ids.device).reshape(shape)
        keep = keys != self.padding_idx
        rows = self._rows(np.ascontiguousarray(keys[keep]), ids.device)
        out = rows.new_zeros((keys.shape[0], self.embedding_dim))
        idx = torch.from_numpy(np.flatnonzero(keep)).to(ids.device)
        return out.index_copy(0, idx, rows).reshape(shape)


class EmbeddingBag(_StrataModule):
    """``EmbeddingBag(table, mode="sum"|"mean")``: forward(input, offsets=None)
    -> [nbags, dim], as torch.nn.EmbeddingBag (include_last_offset=False):

    * input 1-D with offsets 1-D: bag b holds input[offsets[b]:offsets[b+1]]
      (the last bag runs to the end); offsets must start at 0 and not
      decrease.  An empty bag gives zeros.
    * input 2-D [B, N] without offsets: B bags of N ids each.

    backward gives each member row the gradient of its bag (divided by the
    bag's size for "mean") and pushes them; duplicates are summed per key.
    """

    def __init__(self, table, mode="sum"):
        super().__init__(table)
        if mode not in ("sum", "mean"):
            raise ValueError("mode must be \"sum\" or \"mean\", got %r" % (mode,))
        self.mode = mode

    def forward(self, input, offsets=None):
        if not isinstance(input, torch.Tensor):
            raise TypeError("input must be a torch.Tensor, got %s" % type(input).__name__)
        device = input.device
        if input.dim() == 2:
            if offsets is not None:
                raise ValueError("offsets must be None when input is 2-D")
            nbags, per = input.shape
            bag_of = np.repeat(np.arange(nbags, dtype=np.int64), per)
        elif input.dim() == 1:
            if offsets is None:
                raise ValueError("offsets is required when input is 1-D")
            if not isinstance(offsets, torch.Tensor) or offsets.dim() != 1:
                raise ValueError("offsets must be a 1-D tensor")
            off = _keys_of(offsets)
            n = input.shape[0]
            nbags = off.shape[0]
            if nbags and (off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] > n):
                raise ValueError("offsets must start at 0, not decrease and not exceed "
                                 "len(input) = %d" % n)
            bag_of = np.repeat(np.arange(nbags, dtype=np.int64),
                               np.diff(np.append(off, n)))
        else:
            raise ValueError("input must be 1-D (with offsets) or 2-D, got shape %s" %
                             (tuple(input.shape),))
        keys = _keys_of(input)
        rows = self._rows(keys, device)
        bag_t = torch.from_numpy(bag_of).to(device)
        out = rows.new_zeros((nbags, self.embedding_dim)).index_add(0, bag_t, rows)
        if self.mode == "mean":
            counts = np.bincount(bag_of, minlength=nbags).astype(np.float32)
            counts = torch.from_numpy(np.maximum(counts, 1.0)).to(device)
            out = out / counts.unsqueeze(1)
        return out
