"""NLCL: unsupervised non-local contrastive deraining (Ye et al. CVPR 2022; asymmetric variant, TPAMI 2024).

Depends on torch alone and works on tensors; reading files is the caller's job.
"""

from .checkpoint import load_generator, save_generator
from .config import NLCLConfig
from .inference import UnitRange, derain
from .intrinsic_dim import IDReport, estimate_intrinsic_dim, levina_bickel, two_nn
from .networks import Discriminator, Generator, ProjectionHead
from .sampler import gather_at, sample_nonlocal
from .trainer import NLCLTrainer

__all__ = [
    "Discriminator",
    "Generator",
    "IDReport",
    "NLCLConfig",
    "NLCLTrainer",
    "ProjectionHead",
    "UnitRange",
    "derain",
    "estimate_intrinsic_dim",
    "gather_at",
    "levina_bickel",
    "load_generator",
    "sample_nonlocal",
    "save_generator",
    "two_nn",
]
