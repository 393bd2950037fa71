"""Rows of the op table for the Tensor API of issue #16 (ops/selection.py, ops/shapes.py,
ops/arithmetic.py and the in-place forms of ops/inplace.py).

test_ops_gradcheck.py imports this module before it builds its tests, so these rows join
CASES and go through gradcheck, PyTorch parity, compile, jvp and hessian like every other
row. Inputs stay away from ties (sort, topk, kthvalue, median, mode use distinct values;
mode's rows have one clear winner per slice) and from kinks (cdist away from zero
distances, copysign away from zero); tests/test_tensor_api.py covers ties, return types,
errors and the rest against PyTorch.

Ops that return several tensors are checked through one of them, or through a weighted
sum of all of them (so that each piece's gradient is distinct).
"""
import numpy as np

from test_ops_gradcheck import F, away, case, distinct, pos, rnd

# rows that read values while recording (the order found by sorting, the NaN and
# infinity masks): under compile they run eagerly, as max(dim) does
EAGER_ROWS = set()


def eager(id, fn, *inputs, **kw):
    EAGER_ROWS.add(id)
    case(id, fn, *inputs, **kw)


def weighted(T, pieces):
    """sum_k (k + 1) * piece_k, each piece flattened: one output that tells pieces apart."""
    return T.cat([(k + 1.0) * p.reshape(-1) for k, p in enumerate(pieces)])


# ---- sorting and selection (gradients through the gathered positions) ----------------------------
eager("sort-(5)", lambda T, x: T.sort(x).values, distinct(5))
eager("sort-(3,4)-dim0", lambda T, x: T.sort(x, 0)[0], distinct(3, 4))
eager("sort-(2,3,4)-dim-1-desc-method", lambda T, x: x.sort(dim=-1, descending=True).values,
      distinct(2, 3, 4))
eager("sort-(3,4)-dim1-stable", lambda T, x: T.sort(x, dim=1, stable=True).values,
      distinct(3, 4))
eager("sort-()", lambda T, x: T.sort(x).values, rnd())
eager("topk-(6)-k3", lambda T, x: T.topk(x, 3).values, distinct(6))
eager("topk-(3,5)-k2-dim0-smallest", lambda T, x: x.topk(2, dim=0, largest=False).values,
      distinct(3, 5))
eager("topk-(2,3,4)-k1-method", lambda T, x: x.topk(1)[0], distinct(2, 3, 4))
eager("kthvalue-(5)-k2", lambda T, x: T.kthvalue(x, 2).values, distinct(5))
eager("kthvalue-(3,4)-k3-dim1-keep", lambda T, x: T.kthvalue(x, 3, 1, keepdim=True)[0],
      distinct(3, 4))
eager("kthvalue-(4,3)-k1-dim0-method", lambda T, x: x.kthvalue(1, dim=0).values, distinct(4, 3))
eager("median-(5)", lambda T, x: T.median(x), distinct(5))
eager("median-(3,4)-all", lambda T, x: x.median(), distinct(3, 4))
eager("median-(3,4)-dim1", lambda T, x: T.median(x, 1).values, distinct(3, 4))
eager("median-(2,3,5)-dim-1-keep-method", lambda T, x: x.median(dim=-1, keepdim=True)[0],
      distinct(2, 3, 5))
eager("median-(4,3)-dim0", lambda T, x: T.median(x, dim=0).values, distinct(4, 3))
# distinct values: every value occurs once, so the mode is the smallest (a tie of counts would
# move under the finite differences' perturbation); ties are tested against torch elsewhere
eager("mode-(3,4)-dim1", lambda T, x: T.mode(x, 1).values, distinct(3, 4))
eager("mode-(4,3)-dim0-keep-method", lambda T, x: x.mode(0, keepdim=True)[0], distinct(4, 3))
eager("max-(3,4)-dim1-values", lambda T, x: T.max(x, 1).values, distinct(3, 4))
eager("min-(3,4)-dim0-keep-values", lambda T, x: x.min(dim=0, keepdim=True).values,
      distinct(3, 4))
_MASK = np.array([[True, False, True, True], [False, False, True, False], [True] * 4])
case("masked_select-(3,4)", lambda T, x: T.masked_select(x, T.tensor(_MASK)), rnd(3, 4))
case("masked_select-(4)-broadcast-method", lambda T, x: x.masked_select(T.tensor(_MASK[:2])),
     rnd(4))
_IDX = np.array([[2, 0, 1, 3], [1, 1, 0, 2], [3, 2, 2, 0]])
case("take_along_dim-(3,4)-dim1", lambda T, x: T.take_along_dim(x, T.tensor(_IDX), 1), rnd(3, 4))
case("take_along_dim-(4,4)-dim0-method",
     lambda T, x: x.take_along_dim(T.tensor(_IDX[:, :4]), dim=0), rnd(4, 4))
case("take_along_dim-(3,1)-broadcast-dim1",
     lambda T, x: T.take_along_dim(x, T.tensor(np.zeros((3, 5), np.int64)), dim=1), rnd(3, 1))
case("take_along_dim-(3,4)-flat", lambda T, x: T.take_along_dim(x, T.tensor([0, 5, 5, 11])),
     rnd(3, 4))
eager("take_along_dim-argsort-(3,4)",
      lambda T, x: T.take_along_dim(x, T.argsort(x, dim=1), dim=1) * T.arange(4.0),
      distinct(3, 4))

# no index repeats within a row: with repeats torch's forward keeps one write (which one is
# unspecified) while its src gradient reaches every entry; tapegrad's follows the last
# write, consistently (test_tensor_api checks repeats against torch's values)
_SIDX = np.array([[0, 2], [1, 0], [2, 1]])
case("scatter-(3,3)-src-dim1", lambda T, x, s: T.scatter(x, 1, T.tensor(_SIDX), s),
     rnd(3, 3), rnd(3, 2))
# a src larger than the index: torch's own backward fails on it (a gradient of the index's
# shape for src), so this row runs without torch
case("scatter-(3,3)-src-larger-dim0-method",
     lambda T, x, s: x.scatter(0, T.tensor(_SIDX[:2]), s), rnd(3, 3), rnd(3, 3), torch=False)
case("scatter-(3,3)-value", lambda T, x: T.scatter(x, 1, T.tensor(_SIDX), 0.5), rnd(3, 3))
case("scatter_-(3,3)-src", lambda T, x, s: (x * 1.0).scatter_(1, T.tensor(_SIDX), s),
     rnd(3, 3), rnd(3, 2))
case("scatter_add_-(3,3)-repeats",
     lambda T, x, s: (x * 1.0).scatter_add_(1, T.tensor([[0, 2], [1, 0], [2, 2]]), s),
     rnd(3, 3), rnd(3, 2))
case("index_add-(4,2)-dim0", lambda T, x, s: T.index_add(x, 0, T.tensor([3, 0, 3]), s),
     rnd(4, 2), rnd(3, 2))
case("index_add-(2,3)-dim1-alpha-method",
     lambda T, x, s: x.index_add(1, T.tensor([2, 0]), s, alpha=-0.5), rnd(2, 3), rnd(2, 2))
case("index_add_-(3)", lambda T, x, s: (x * 1.0).index_add_(0, T.tensor([1, 1]), s), rnd(3),
     rnd(2))
case("index_fill-(3,4)-dim1", lambda T, x: T.index_fill(x, 1, T.tensor([0, 2]), -1.0),
     rnd(3, 4))
case("index_fill_-(3,2)-dim0-tensor-value",
     lambda T, x, v: (x * 1.0).index_fill_(0, T.tensor([1]), v), rnd(3, 2), rnd())
case("fill_diagonal_-(3,3)", lambda T, x: (x * 1.0).fill_diagonal_(2.0), rnd(3, 3))
case("fill_diagonal_-(5,2)-wrap", lambda T, x: (x * 1.0).fill_diagonal_(0.0, wrap=True),
     rnd(5, 2))
case("pad-(2,3)-constant", lambda T, x: F(T).pad(x, (1, 2)), rnd(2, 3))
case("pad-(2,3)-constant-value-two-dims", lambda T, x: F(T).pad(x, (0, 1, 2, 0), value=0.5),
     rnd(2, 3))
case("pad-(1,2,4)-reflect", lambda T, x: F(T).pad(x, (2, 1), mode="reflect"), rnd(1, 2, 4))
case("pad-(1,2,3)-replicate", lambda T, x: F(T).pad(x, (2, 2), mode="replicate"),
     rnd(1, 2, 3))
case("pad-(1,1,2,3)-circular", lambda T, x: F(T).pad(x, (1, 2, 1, 0), mode="circular"),
     rnd(1, 1, 2, 3))
case("pad-(3,4)-crop", lambda T, x: F(T).pad(x, (-1, 1, 0, -1)), rnd(3, 4))
case("normalize-(3,4)", lambda T, x: F(T).normalize(x), rnd(3, 4))
case("normalize-(2,3)-p1-dim0", lambda T, x: F(T).normalize(x, p=1.0, dim=0),
     away(2, 3, margin=0.2))

# ---- batched and scaled products -----------------------------------------------------------------
case("bmm-(2,3,4)x(2,4,2)", lambda T, x, y: T.bmm(x, y), rnd(2, 3, 4), rnd(2, 4, 2))
case("bmm-method-(3,2,2)x(3,2,3)", lambda T, x, y: x.bmm(y), rnd(3, 2, 2), rnd(3, 2, 3))
case("baddbmm-(2,3,2)", lambda T, i, x, y: T.baddbmm(i, x, y), rnd(2, 3, 2), rnd(2, 3, 4),
     rnd(2, 4, 2))
case("baddbmm-beta-alpha-(2)", lambda T, i, x, y: T.baddbmm(i, x, y, beta=0.5, alpha=-2.0),
     rnd(2), rnd(2, 3, 2), rnd(2, 2, 2))
case("addmm-(3,2)", lambda T, i, x, y: T.addmm(i, x, y), rnd(3, 2), rnd(3, 4), rnd(4, 2))
case("addmm-(2)-beta-alpha-method", lambda T, i, x, y: i.addmm(x, y, beta=2, alpha=0.5),
     rnd(2), rnd(3, 4), rnd(4, 2))

# ---- pieces --------------------------------------------------------------------------------------
case("chunk-(6,2)-3", lambda T, x: weighted(T, T.chunk(x, 3)), rnd(6, 2))
case("chunk-(2,5)-2-dim1-method", lambda T, x: weighted(T, x.chunk(2, dim=1)), rnd(2, 5))
case("chunk-(3,4)-3-dim-1", lambda T, x: weighted(T, x.chunk(3, -1)), rnd(3, 4))
case("split-(5,2)-2", lambda T, x: weighted(T, T.split(x, 2)), rnd(5, 2))
case("split-(2,6)-sizes-dim1", lambda T, x: weighted(T, T.split(x, [1, 3, 2], dim=1)),
     rnd(2, 6))
case("split-(3,4)-method-dim-1", lambda T, x: weighted(T, x.split(3, -1)), rnd(3, 4))
case("unbind-(3,4)", lambda T, x: weighted(T, T.unbind(x)), rnd(3, 4))
case("unbind-(2,3,2)-dim1-method", lambda T, x: weighted(T, x.unbind(1)), rnd(2, 3, 2))
case("unbind-(2,3)-dim-1", lambda T, x: weighted(T, x.unbind(dim=-1)), rnd(2, 3))
case("narrow-(3,5)-dim1", lambda T, x: T.narrow(x, 1, 1, 3), rnd(3, 5))
case("narrow-(4,2)-neg-start-method", lambda T, x: x.narrow(0, -3, 2), rnd(4, 2))
case("narrow-(2,3,4)-dim-1", lambda T, x: x.narrow(-1, 0, 2), rnd(2, 3, 4))
case("select-(3,4)-dim1", lambda T, x: x.select(1, 2), rnd(3, 4))
case("select-(2,3,2)-dim-1-neg", lambda T, x: T.select(x, -1, -1), rnd(2, 3, 2))

# ---- copies --------------------------------------------------------------------------------------
case("repeat-(2,3)-2,2", lambda T, x: x.repeat(2, 2), rnd(2, 3))
case("repeat-(3)-2,1,2", lambda T, x: x.repeat(2, 1, 2), rnd(3))
case("repeat-(2,2)-tuple", lambda T, x: x.repeat((1, 3)), rnd(2, 2))
case("tile-(2,3)-(2,)", lambda T, x: T.tile(x, (2,)), rnd(2, 3))
case("tile-(3)-(2,2)-method", lambda T, x: x.tile(2, 2), rnd(3))
case("repeat_interleave-(3)-2", lambda T, x: T.repeat_interleave(x, 2), rnd(3))
case("repeat_interleave-(2,3)-dim1", lambda T, x: x.repeat_interleave(3, dim=1), rnd(2, 3))
case("repeat_interleave-(3,2)-tensor-dim0",
     lambda T, x: T.repeat_interleave(x, T.tensor([2, 0, 1]), dim=0), rnd(3, 2))
case("repeat_interleave-(2,2)-flat", lambda T, x: x.repeat_interleave(2), rnd(2, 2))
case("expand_as-(3,1)", lambda T, x: x.expand_as(T.ones(2, 3, 4)), rnd(3, 1))
case("view_as-(2,6)", lambda T, x: x.view_as(T.ones(3, 4)) * T.arange(4.0), rnd(2, 6))
case("reshape_as-(2,3,2)", lambda T, x: x.reshape_as(T.ones(4, 3)) * T.arange(3.0),
     rnd(2, 3, 2))
case("contiguous-t-(2,3)", lambda T, x: x.t().contiguous() * T.arange(2.0), rnd(2, 3))
case("broadcast_to-(3)", lambda T, x: T.broadcast_to(x, (2, 3)) * T.arange(2.0).reshape(2, 1),
     rnd(3))
case("broadcast_to-(2,1)-method", lambda T, x: x.broadcast_to((2, 4)), rnd(2, 1))
case("broadcast_tensors-(3,1)x(4)",
     lambda T, x, y: weighted(T, T.broadcast_tensors(x, y)), rnd(3, 1), rnd(4))
case("meshgrid-ij-(3)x(2)", lambda T, x, y: weighted(T, T.meshgrid(x, y, indexing="ij")),
     rnd(3), rnd(2))
case("meshgrid-xy-(2)x(3)x(2)",
     lambda T, x, y, z: weighted(T, T.meshgrid([x, y, z], indexing="xy")), rnd(2), rnd(3),
     rnd(2))

case("vstack-(3)x(2,3)", lambda T, x, y: T.vstack([x, y]), rnd(3), rnd(2, 3))
case("hstack-(2,1)x(2,3)", lambda T, x, y: T.hstack((x, y)), rnd(2, 1), rnd(2, 3))
case("hstack-(2)x(3)", lambda T, x, y: T.hstack([x, y]), rnd(2), rnd(3))
case("column_stack-(3)x(3,2)", lambda T, x, y: T.column_stack([x, y]), rnd(3), rnd(3, 2))
case("dstack-(2,2)x(2,2,1)", lambda T, x, y: T.dstack([x, y]), rnd(2, 2), rnd(2, 2, 1))
case("atleast_2d-(3)", lambda T, x: T.atleast_2d(x) * T.ones(2, 1), rnd(3))
case("atleast_3d-pair", lambda T, x, y: weighted(T, T.atleast_3d(x, y)), rnd(), rnd(2, 2))
case("unflatten-(2,6)-dim1", lambda T, x: x.unflatten(1, (2, -1)) * T.arange(3.0), rnd(2, 6))
case("tensor_split-(7)-3", lambda T, x: weighted(T, T.tensor_split(x, 3)), rnd(7))
case("tensor_split-(2,5)-indices-dim1", lambda T, x: weighted(T, x.tensor_split([1, 4], 1)),
     rnd(2, 5))
case("hsplit-(2,4)-2", lambda T, x: weighted(T, T.hsplit(x, 2)), rnd(2, 4))
case("vsplit-(4,2)-list", lambda T, x: weighted(T, x.vsplit([1, 3])), rnd(4, 2))
case("fliplr-(2,3)", lambda T, x: T.fliplr(x) * T.arange(3.0), rnd(2, 3))
case("flipud-(3,2)-method", lambda T, x: x.flipud() * T.arange(2.0), rnd(3, 2))

# ---- moving dims ---------------------------------------------------------------------------------
case("movedim-(2,3,4)-0,-1", lambda T, x: T.movedim(x, 0, -1), rnd(2, 3, 4))
case("movedim-(2,3,4)-pair-method", lambda T, x: x.movedim((0, 1), (2, 0)), rnd(2, 3, 4))
case("moveaxis-(2,3)", lambda T, x: T.moveaxis(x, 1, 0), rnd(2, 3))
case("swapaxes-(2,3,4)-0,2", lambda T, x: T.swapaxes(x, 0, 2), rnd(2, 3, 4))
case("swapdims-(2,3)-method", lambda T, x: x.swapdims(0, -1), rnd(2, 3))
case("mH-(2,3,4)", lambda T, x: x.mH, rnd(2, 3, 4))
case("mT-(3,2)", lambda T, x: x.mT * T.arange(3.0), rnd(3, 2))

# ---- diagonals -----------------------------------------------------------------------------------
case("diag-(4)", lambda T, x: T.diag(x), rnd(4))
case("diag-(3)-k1-method", lambda T, x: x.diag(1), rnd(3))
case("diag-(3)-k-2", lambda T, x: T.diag(x, -2), rnd(3))
case("diag-(3,4)", lambda T, x: T.diag(x), rnd(3, 4))
case("diag-(3,4)-k1", lambda T, x: x.diag(1), rnd(3, 4))
case("diag-(4,3)-k-1", lambda T, x: T.diag(x, diagonal=-1), rnd(4, 3))
case("diag_embed-(2,3)", lambda T, x: T.diag_embed(x), rnd(2, 3))
case("diag_embed-(2,3)-offset1-dims0,2", lambda T, x: T.diag_embed(x, 1, 0, 2), rnd(2, 3))
case("diag_embed-(3)-offset-1-method", lambda T, x: x.diag_embed(offset=-1), rnd(3))
case("diagflat-(2,2)", lambda T, x: T.diagflat(x), rnd(2, 2))
case("diagflat-(3)-offset1-method", lambda T, x: x.diagflat(1), rnd(3))
case("block_diag-(2,2)x(3)x()", lambda T, x, y, z: T.block_diag(x, y, z), rnd(2, 2), rnd(3),
     rnd())
case("block_diag-(1,3)x(2,1)", lambda T, x, y: T.block_diag(x, y), rnd(1, 3), rnd(2, 1))

# ---- products of arrays --------------------------------------------------------------------------
case("cross-(3)", lambda T, x, y: T.cross(x, y, dim=0), rnd(3), rnd(3))
case("cross-(2,3)-dim1-method", lambda T, x, y: x.cross(y, dim=1), rnd(2, 3), rnd(2, 3))
case("cross-(3,2)x(3,1)-dim0-broadcast", lambda T, x, y: T.cross(x, y, dim=0), rnd(3, 2),
     rnd(3, 1))
case("cross-(2,3)-dim-1", lambda T, x, y: T.cross(x, y, dim=-1), rnd(2, 3), rnd(2, 3))
case("kron-(2,2)x(2,3)", lambda T, x, y: T.kron(x, y), rnd(2, 2), rnd(2, 3))
case("kron-(3)x(2)-method", lambda T, x, y: x.kron(y), rnd(3), rnd(2))
case("kron-(2)x(2,2)", lambda T, x, y: T.kron(x, y), rnd(2), rnd(2, 2))
case("tensordot-(2,3,4)x(3,4,2)-2", lambda T, x, y: T.tensordot(x, y), rnd(2, 3, 4),
     rnd(3, 4, 2))
case("tensordot-(3,4)x(4,2)-1", lambda T, x, y: T.tensordot(x, y, dims=1), rnd(3, 4), rnd(4, 2))
case("tensordot-(2,3,2)x(2,3)-lists",
     lambda T, x, y: T.tensordot(x, y, dims=([0, 1], [0, 1])), rnd(2, 3, 2), rnd(2, 3))
case("tensordot-(3)x(2)-0", lambda T, x, y: T.tensordot(x, y, dims=0), rnd(3), rnd(2))
# torch has no second derivative of cdist (its double backward raises), so these rows are
# marked torch=False: their first gradients are compared with torch's in test_tensor_api.py
case("cdist-(3,2)x(4,2)", lambda T, x, y: T.cdist(x, y), rnd(3, 2), rnd(4, 2) + 5.0, torch=False)
case("cdist-(2,3,2)x(2,2,2)-batched", lambda T, x, y: T.cdist(x, y), rnd(2, 3, 2),
     rnd(2, 2, 2) + 5.0, torch=False)
case("cdist-(3,2)x(2,2)-p1", lambda T, x, y: T.cdist(x, y, p=1.0), away(3, 2, margin=0.3),
     away(2, 2, margin=0.3) + 5.0, torch=False)
case("cdist-(2,3)x(3,3)-p3", lambda T, x, y: T.cdist(x, y, p=3.0), rnd(2, 3), rnd(3, 3) + 5.0,
     torch=False)

# ---- arithmetic ----------------------------------------------------------------------------------
case("true_divide-(2,3)x(3)", lambda T, x, y: T.true_divide(x, y), rnd(2, 3),
     away(3, margin=0.5))
case("copysign-(2,3)-tensor", lambda T, x: T.copysign(x, T.tensor([-1.0, 0.5, -2.0])),
     away(2, 3, margin=0.2))
case("copysign-(4)-number-method", lambda T, x: x.copysign(-1.0), away(4, margin=0.2))
# NaN and infinities come from constants added to x: a NaN made from x itself (log of a
# negative) would make its gradient NaN in torch and here alike
_SPECIAL = [[0.0, float("nan"), 0.0], [float("inf"), 0.0, -float("inf")]]
eager("nan_to_num-(2,3)",
      lambda T, x: T.nan_to_num(x + T.tensor(_SPECIAL), nan=0.5, posinf=2.0, neginf=-1.0),
      rnd(2, 3))
eager("nan_to_num-(2,3)-method",
      lambda T, x: (x + T.tensor(_SPECIAL)).nan_to_num(posinf=1.0, neginf=-3.0), rnd(2, 3))
eager("nansum-(2,3)", lambda T, x: T.nansum(x + T.tensor(_SPECIAL[:1] * 2)), rnd(2, 3))
eager("nansum-(2,3)-dim1-keep-method",
      lambda T, x: (x + T.tensor(_SPECIAL[:1] * 2)).nansum(1, keepdim=True), rnd(2, 3))
eager("nanmean-(2,3)-dim0", lambda T, x: T.nanmean(x + T.tensor([[0.0, float("nan"), 0.0],
                                                                 [0.0, 0.0, float("nan")]]), 0),
      rnd(2, 3))
eager("nanmean-(3,2)-method", lambda T, x: x.nanmean(), rnd(3, 2))
case("clamp_min-(2,3)", lambda T, x: T.clamp_min(x, 0.1), away(2, 3, points=(0.1,)))
case("clamp_max-(4)-method", lambda T, x: x.clamp_max(-0.2), away(4, points=(-0.2,)))
case("frac-(2,3)", lambda T, x: T.frac(x * 3.0), away(2, 3, points=(-2 / 3, -1 / 3, 0.0, 1 / 3,
                                                                   2 / 3), margin=0.05,
                                                       lo=-0.9, hi=0.9))
case("deg2rad-(3)", lambda T, x: T.deg2rad(x), rnd(3))
case("rad2deg-(3)-method", lambda T, x: x.rad2deg(), rnd(3))
case("dist-(2,3)x(3)", lambda T, x, y: T.dist(x, y), rnd(2, 3), rnd(3))
case("dist-(4)-p1", lambda T, x, y: T.dist(x, y, p=1), rnd(4), rnd(4) + 5.0)
case("var_mean-(2,3)-dim1", lambda T, x: weighted(T, T.var_mean(x, 1)), rnd(2, 3))
case("std_mean-(3,2)-keep", lambda T, x: weighted(T, T.std_mean(x, 0, keepdim=True)),
     rnd(3, 2))
case("std_mean-(4)-correction0", lambda T, x: weighted(T, T.std_mean(x, correction=0)),
     rnd(4))
eager("aminmax-(3,4)-dim1", lambda T, x: weighted(T, T.aminmax(x, dim=1)), distinct(3, 4))
case("aminmax-(2,3)-all-method", lambda T, x: weighted(T, x.aminmax()), distinct(2, 3))
case("diff-(5)", lambda T, x: T.diff(x), rnd(5))
case("diff-(3,4)-n2-dim1", lambda T, x: T.diff(x, n=2, dim=1), rnd(3, 4))
case("diff-(3,2)-dim0-method", lambda T, x: x.diff(dim=0), rnd(3, 2))
case("diff-(2,3)-prepend-append", lambda T, x, p, a: T.diff(x, prepend=p, append=a), rnd(2, 3),
     rnd(2, 1), rnd(2, 2))
case("cumsum-method-(2,3)-dim1", lambda T, x: x.cumsum(1), rnd(2, 3))
case("cumprod-method-(4)", lambda T, x: x.cumprod(dim=0), rnd(4))
case("addcmul-(2,3)", lambda T, x, y, z: T.addcmul(x, y, z, value=0.5), rnd(2, 3), rnd(2, 3),
     rnd(3))
case("addcdiv-(2,3)-method", lambda T, x, y, z: x.addcdiv(y, z, value=-2.0), rnd(2, 3),
     rnd(2, 3), away(2, 3, margin=0.5))

# ---- in-place forms, on a recorded tensor (a leaf that requires grad may not be changed) ---------
_UNARY_INPLACE = {
    "exp_": rnd, "log_": pos, "sqrt_": pos, "abs_": lambda *s: away(*s), "neg_": rnd,
    "sin_": rnd, "cos_": rnd, "tanh_": rnd, "sigmoid_": rnd, "relu_": lambda *s: away(*s),
    "square_": rnd, "log1p_": pos, "expm1_": rnd, "reciprocal_": lambda *s: away(*s, margin=0.4),
    "rsqrt_": pos, "erf_": rnd, "atan_": rnd, "sinh_": rnd, "log2_": pos,
}
for _name, _make in _UNARY_INPLACE.items():
    case(f"{_name}-(2,3)", lambda T, x, n=_name: getattr(x * 1.0, n)() * 2.0, _make(2, 3))
case("pow_-(2,3)-2", lambda T, x: (x + 0.0).pow_(2), rnd(2, 3))
case("pow_-(4)-tensor", lambda T, x, y: (x * 1.0).pow_(y), pos(4), rnd(4))
case("clamp_-(2,3)", lambda T, x: (x * 1.0).clamp_(-0.5, 0.5), away(2, 3, points=(-0.5, 0.5),
                                                                   margin=0.1))
case("clip_-(4)", lambda T, x: (x * 1.0).clip_(min=0.0), away(4))
case("add_-alpha-(2,3)", lambda T, x, y: (x * 1.0).add_(y, alpha=-2), rnd(2, 3), rnd(3))
case("sub_-alpha-(2,3)", lambda T, x, y: (x * 1.0).sub_(y, alpha=0.5), rnd(2, 3), rnd(2, 3))
case("addcmul_-(2,3)", lambda T, x, y, z: (x * 1.0).addcmul_(y, z, value=2), rnd(2, 3),
     rnd(2, 3), rnd(2, 3))
case("addcdiv_-(3)", lambda T, x, y, z: (x * 1.0).addcdiv_(y, z), rnd(3), rnd(3),
     away(3, margin=0.5))
case("lerp_-(2,3)-scalar", lambda T, x, y: (x * 1.0).lerp_(y, 0.25), rnd(2, 3), rnd(2, 3))
case("lerp_-(3)-tensor", lambda T, x, y, w: (x * 1.0).lerp_(y, w), rnd(3), rnd(3), rnd(3))
case("exp_-twice-chain-(3)", lambda T, x: (x * 0.5).sin_().exp_().mul(3.0), rnd(3))
case("masked_fill_-(2,3)",
     lambda T, x: (x * 1.0).masked_fill_(T.tensor([[True, False, True], [False] * 3]), 0.5),
     rnd(2, 3))

__all__ = []
