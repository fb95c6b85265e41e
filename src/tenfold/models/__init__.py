"""Small reference networks: a GroupNorm CNN, LeNet-5, tiny HF-config models (Llama, ViT, MoE), and offline
pretrained models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2). Every builder has a "debug" size."""

from tenfold.models.cnn import MLP, GNConvNet, LeNet5

__all__ = ["GNConvNet", "LeNet5", "MLP"]
