"""detframe: config-driven object detection on PyTorch, torchvision and Hydra."""
__version__ = "0.1.0"
