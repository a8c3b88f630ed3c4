"""BEATs audio transformer (microsoft/unilm ``beats``) for :mod:`espnet_cls`.

- :mod:`.config`: the checkpoint ``cfg`` keys and defaults.
- :mod:`.layers`: the transformer (attention with gated relative position bias, deep norm).
- :mod:`.frontend`: Kaldi fbank and roll augmentation.
- :mod:`.checkpoint`: reading official checkpoints with strict key accounting.

The encoder registered as ``encoder: beats`` is :class:`espnet_cls.models.encoders.beats.BeatsEncoder`.
"""

from espnet_cls.models.beats.checkpoint import (
    BeatsCheckpointError,
    LoadReport,
    load_beats_state_dict,
    normalize_state_dict,
    read_beats_checkpoint,
)
from espnet_cls.models.beats.config import BEATS_DEFAULTS, BEATsConfig
from espnet_cls.models.beats.frontend import beats_fbank, roll_waveforms
from espnet_cls.models.beats.layers import TransformerEncoder, relative_position_bucket

__all__ = [
    "BEATS_DEFAULTS",
    "BEATsConfig",
    "BeatsCheckpointError",
    "LoadReport",
    "TransformerEncoder",
    "beats_fbank",
    "load_beats_state_dict",
    "normalize_state_dict",
    "read_beats_checkpoint",
    "relative_position_bucket",
    "roll_waveforms",
]
