"""espnet_cls: ESPnet-style audio classification (multi-class and multi-label)."""

__version__ = "0.1.0"


def __getattr__(name):  # lazy: importing the package must not import torch
    if name == "Classifier":
        from espnet_cls.classifier import Classifier

        return Classifier
    raise AttributeError(f"module 'espnet_cls' has no attribute {name!r}")
