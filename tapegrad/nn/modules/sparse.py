"""Embedding: a lookup table of learned vectors."""
import numpy as np

from ... import creation
from ...ops import composite, elementwise
from ...grad_mode import no_grad
from ...tensor import Tensor, canonical_dtype
from .. import init
from ..parameter import Parameter
from .module import Module

__all__ = ["Embedding"]


class Embedding(Module):
    """Row ``i`` of ``weight`` (``(num_embeddings, embedding_dim)``, initialised N(0, 1))
    for every integer ``i`` of the input: output shape ``input.shape + (embedding_dim,)``.

    With ``padding_idx`` that row starts at zeros and never receives a gradient (entries
    of the input equal to it contribute nothing to ``weight.grad``). ``max_norm``
    renormalises (in place) the rows looked up whose ``norm_type``-norm exceeds it.
    ``scale_grad_by_freq`` and ``sparse`` gradients are not supported.

    >>> import tapegrad as tg
    >>> emb = tg.nn.Embedding(10, 3, padding_idx=0)
    >>> emb(tg.tensor([[0, 2], [4, 0]])).shape
    tapegrad.Size([2, 2, 3])
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, device=None, dtype=None):
        super().__init__()
        if scale_grad_by_freq or sparse:
            raise NotImplementedError("Embedding: scale_grad_by_freq and sparse gradients "
                                      "are not supported by tapegrad")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        if padding_idx is not None:
            if padding_idx > 0:
                if padding_idx >= num_embeddings:
                    raise AssertionError("Padding_idx must be within num_embeddings")
            elif padding_idx < 0:
                if padding_idx < -num_embeddings:
                    raise AssertionError("Padding_idx must be within num_embeddings")
                padding_idx = num_embeddings + padding_idx
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            d = None if dtype is None else canonical_dtype(dtype)
            self.weight = Parameter(creation.empty(num_embeddings, embedding_dim, dtype=d,
                                                   device=device), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if list(_weight.shape) != [num_embeddings, embedding_dim]:
                raise AssertionError("Shape of weight does not match num_embeddings and "
                                     "embedding_dim")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is ``embeddings`` (2-d), frozen unless ``freeze=False``."""
        if embeddings.dim() != 2:
            raise AssertionError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"embedding(): argument 'indices' must be Tensor, not "
                            f"{type(input).__name__}")
        idx = input._data
        if idx.dtype not in (np.int64, np.int32):
            raise RuntimeError(f"Expected tensor for argument #1 'indices' to have one of the "
                               f"following scalar types: Long, Int; but got {idx.dtype} "
                               f"instead (usage: embedding(x.long()))")
        n = self.weight.shape[0]
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError("index out of range in self")
        w = self.weight
        if self.max_norm is not None:
            self._renorm(np.unique(idx))
        flat = input.reshape(-1)
        rows = composite.index_select(w, 0, flat)
        if self.padding_idx is not None and w.requires_grad:
            # same values, but the rows looked up at padding_idx pass no gradient back
            keep = Tensor((idx.reshape(-1) != self.padding_idx)[:, None])
            rows = elementwise.where(keep, rows, rows.detach())
        return rows.reshape(*idx.shape, self.embedding_dim)

    def _renorm(self, rows):
        a = self.weight._data
        norms = np.linalg.norm(a[rows], ord=self.norm_type, axis=1)
        big = norms > self.max_norm
        if big.any():
            r = rows[big]
            scale = self.max_norm / (norms[big] + 1e-7)
            with no_grad():
                new = self.weight.detach()[Tensor(r)] * Tensor(scale[:, None].astype(a.dtype))
                self.weight[Tensor(r)] = new

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        return s
