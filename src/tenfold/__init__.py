"""tenfold: ten recent ML papers as tested library components, each with an honest reproduction.

Nothing heavy is imported here; subpackages import torch, transformers, flwr ... on demand.
"""

__version__ = "0.2.0"
