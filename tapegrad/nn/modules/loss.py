"""Losses as modules, as in ``torch.nn``: each holds its options and calls its
``tapegrad.nn.functional`` form in ``forward(input, target)``.

Every loss takes ``reduction`` (``'mean'``, ``'sum'`` or ``'none'``; KLDivLoss also
``'batchmean'``), checked when the loss is called, as in PyTorch. The deprecated
``size_average``/``reduce`` arguments, where PyTorch has them, set ``reduction`` once at
construction, with PyTorch's warning. Class weights (and BCEWithLogitsLoss's ``pos_weight``)
are buffers, so ``state_dict()`` holds them when given and ``double()`` converts them.

>>> import tapegrad as tg
>>> from tapegrad.nn.modules.loss import CrossEntropyLoss
>>> loss = CrossEntropyLoss(label_smoothing=0.1)
>>> loss
CrossEntropyLoss()
>>> round(loss(tg.zeros(2, 4), tg.tensor([1, 3])).item(), 4)
1.3863
"""
from .. import functional as F
from .module import Module


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = F._legacy(size_average, reduce, reduction)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class L1Loss(_Loss):
    """Mean (or summed, or per-element) absolute error |input - target|."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class MSELoss(_Loss):
    """Mean (or summed, or per-element) squared error (input - target)^2."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Squared error halved and divided by ``beta`` where |input - target| < beta, absolute
    error minus beta / 2 elsewhere (``beta=0``: the L1 loss)."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Half the squared error where |input - target| < delta, delta (|input - target| -
    delta / 2) elsewhere: SmoothL1Loss(beta=delta) times delta."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (C,), (N, C) or (N, C, d1, ...) given
    class indices; ``weight`` (a buffer) rescales classes, ``ignore_index`` targets count
    for nothing, and the mean divides by the kept targets' summed weights."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy of raw scores against class indices or class probabilities (a float
    target of the input's shape): log_softmax over dim 1 (dim 0 for a single example), then
    the negative log-likelihood. ``label_smoothing`` in [0, 1] mixes the target with the
    uniform distribution; ``weight``, ``ignore_index`` as in NLLLoss (``ignore_index`` only
    with class indices)."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight,
                               ignore_index=self.ignore_index, reduction=self.reduction,
                               label_smoothing=self.label_smoothing)


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities in [0, 1] (logs clamped at -100); ``weight``
    (a buffer) rescales each element, broadcasting against the input."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross entropy on raw scores, stable for any input: sigmoid and BCELoss in one.
    ``pos_weight`` (a buffer, broadcast along the last dimension: one entry per class)
    weights the positive term; ``weight`` (a buffer) rescales each element."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight,
                                                  pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class KLDivLoss(_Loss):
    """Kullback-Leibler divergence of ``target`` from the log-probabilities ``input``
    (``log_target=True``: target given as log-probabilities too). ``reduction='batchmean'``
    is the divergence's definition; ``'mean'`` divides by every element and warns."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


__all__ = ["L1Loss", "MSELoss", "SmoothL1Loss", "HuberLoss", "NLLLoss", "CrossEntropyLoss",
           "BCELoss", "BCEWithLogitsLoss", "KLDivLoss"]
