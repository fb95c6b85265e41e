"""Small reference networks: a GroupNorm CNN, tiny HF-config models (Llama, ViT, MoE), and offline
pretrained models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2). Every builder has a "debug" size."""

from tenfold.models.cnn import GNConvNet, MLP

__all__ = ["GNConvNet", "MLP"]
