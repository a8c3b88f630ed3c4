"""Encoder registry.

A new encoder is one new module in this package::

    from espnet_cls.models.encoders import AbsEncoder, register_encoder

    @register_encoder("myenc")
    class MyEncoder(AbsEncoder):
        def __init__(self, input_size: int, hidden: int = 256): ...
        def output_size(self) -> int: ...
        def forward(self, xs, lengths): ...

Every module of the package whose name does not start with ``_`` is imported the first
time the registry is consulted (:func:`get_encoder_class`, :func:`encoder_choices`); a
module that fails to import is logged and its error is shown when a name is not found.
"""

from __future__ import annotations

import abc
import importlib
import logging
import pkgutil
from typing import Callable, Type

import torch
from torch import nn

logger = logging.getLogger(__name__)


class AbsEncoder(nn.Module, abc.ABC):
    """Base class of encoders.

    Constructor: ``__init__(self, input_size: int, **conf)`` — ``input_size`` is the feature
    dimension (``n_mels`` of the default frontend, or 1 for raw samples with ``frontend: none``);
    ``conf`` is ``encoder_conf`` from the config (explicit keyword arguments, so an unknown key
    is reported).

    ``forward(xs [B, T, input_size], lengths [B]) -> (hs [B, T', output_size()], lengths' [B])``:
    frames at index >= ``lengths[b]`` are padding; a clip's valid outputs must not depend on
    the padding (mask it), and ``lengths'`` must be >= 1.

    Optional hooks the trainer calls when an encoder defines them (through the model's
    :meth:`CLSModel.param_groups` / :meth:`CLSModel.on_train_step`):

    - ``param_groups(base_lr: float) -> list[dict]``: optimizer parameter groups for this
      encoder's parameters (``{"params": [...], "lr": ...}``, e.g. layer-wise lr decay). Every
      parameter the encoder trains must appear in exactly one group; the model adds the
      rest of the model (decoder, ...) as one group at ``base_lr``.
    - ``on_train_step(step: int) -> None``: called before each optimizer step with the global
      step count (from 0), e.g. to keep a pretrained part frozen for N steps.
    """

    @abc.abstractmethod
    def output_size(self) -> int:
        """Dimension D' of the output frames."""

    @abc.abstractmethod
    def forward(self, xs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xs [B, T, input_size], lengths [B] -> hs [B, T', output_size()], lengths' [B]."""


_REGISTRY: dict[str, Type[AbsEncoder]] = {}
_IMPORT_ERRORS: dict[str, str] = {}
_IMPORTED = False


def register_encoder(name: str) -> Callable[[Type[AbsEncoder]], Type[AbsEncoder]]:
    """Class decorator: make ``encoder: <name>`` build this class."""

    def deco(cls: Type[AbsEncoder]) -> Type[AbsEncoder]:
        if not (isinstance(cls, type) and issubclass(cls, AbsEncoder)):
            raise TypeError(f"register_encoder({name!r}): {cls!r} is not an AbsEncoder subclass")
        old = _REGISTRY.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"encoder name {name!r} already registered by {old.__module__}.{old.__qualname__}")
        _REGISTRY[name] = cls
        return cls

    return deco


def _import_all() -> None:
    global _IMPORTED
    if _IMPORTED:
        return
    _IMPORTED = True
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__name__}.{mod.name}")
        except Exception as e:  # one broken encoder module must not break the others
            _IMPORT_ERRORS[mod.name] = f"{type(e).__name__}: {e}"
            logger.warning("encoder module %s failed to import: %s", mod.name, _IMPORT_ERRORS[mod.name])


def encoder_choices() -> list[str]:
    """Registered encoder names, sorted."""
    _import_all()
    return sorted(_REGISTRY)


def get_encoder_class(name: str) -> Type[AbsEncoder]:
    """The class registered as ``name``; ValueError listing the registered names otherwise."""
    _import_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        msg = f"unknown encoder {name!r}; registered encoders: {', '.join(sorted(_REGISTRY))}"
        if _IMPORT_ERRORS:
            msg += "; modules that failed to import: " + "; ".join(f"{k} ({v})" for k, v in sorted(_IMPORT_ERRORS.items()))
        raise ValueError(msg) from None


__all__ = ["AbsEncoder", "register_encoder", "get_encoder_class", "encoder_choices"]
