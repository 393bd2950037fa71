"""The nn layers, one file per family; tapegrad.nn exports every class listed here."""
from .activation import (CELU, ELU, GELU, SELU, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax,
                         ReLU, ReLU6, Sigmoid, SiLU, Softmax, Softplus, Softsign, Tanh,
                         Tanhshrink)
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .dropout import Dropout
from .flatten import Flatten, Unflatten
from .linear import Bilinear, Identity, Linear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss,
                   L1Loss, MSELoss, NLLLoss, SmoothL1Loss)
from .module import Module
from .normalization import BatchNorm1d, LayerNorm
from .sparse import Embedding

__all__ = ["Module", "Sequential", "ModuleList", "ModuleDict", "ParameterList",
           "ParameterDict", "Identity", "Linear", "Bilinear", "Flatten", "Unflatten",
           "Dropout", "Embedding", "LayerNorm", "BatchNorm1d", "ReLU", "ReLU6", "Tanh",
           "Sigmoid", "GELU", "SiLU", "LeakyReLU", "ELU", "SELU", "CELU", "Softplus",
           "Hardtanh", "LogSigmoid", "Softsign", "Tanhshrink", "Softmax", "LogSoftmax",
           "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss",
           "BCELoss", "BCEWithLogitsLoss", "KLDivLoss"]
