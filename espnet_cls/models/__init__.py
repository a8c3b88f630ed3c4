"""Model components of espnet_cls.

``frontend`` (waveform -> log-mel), ``normalize`` (global / utterance MVN), ``specaug``,
``encoders`` (a registry: cnn, transformer, conformer, and any module dropped in the
package), ``decoder`` (pooling + linear) and ``cls_model`` (the classification model with
its training loss). Build them from a config with :func:`espnet_cls.tasks.cls.build_model`.
"""

from espnet_cls.models.utils import make_pad_mask

__all__ = ["make_pad_mask"]
