"""Neural networks: ``Module`` and its layers, ``Parameter``, ``init``; the functional
forms of the layers, activations and losses are in ``tapegrad.nn.functional``."""
from . import functional, init
from .modules import (CELU, ELU, GELU, SELU, BatchNorm1d, Bilinear, Dropout, Embedding,
                      Flatten, Hardtanh, Identity, LayerNorm, LeakyReLU, Linear, LogSigmoid,
                      LogSoftmax, Module, ModuleDict, ModuleList, ParameterDict,
                      ParameterList, ReLU, ReLU6, Sequential, Sigmoid, SiLU, Softmax,
                      Softplus, Softsign, Tanh, Tanhshrink, Unflatten)
from .modules import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss,
                      L1Loss, MSELoss, NLLLoss, SmoothL1Loss)
from .parameter import Parameter
from . import parallel

__all__ = ["functional", "init", "parallel", "Parameter", "Module", "Sequential", "ModuleList",
           "ModuleDict", "ParameterList", "ParameterDict", "Identity", "Linear", "Bilinear",
           "Flatten", "Unflatten", "Dropout", "Embedding", "LayerNorm", "BatchNorm1d", "ReLU",
           "ReLU6", "Tanh", "Sigmoid", "GELU", "SiLU", "LeakyReLU", "ELU", "SELU", "CELU",
           "Softplus", "Hardtanh", "LogSigmoid", "Softsign", "Tanhshrink", "Softmax",
           "LogSoftmax", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss",
           "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss"]
