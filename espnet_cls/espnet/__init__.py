"""Models trained by real ESPnet (its cls1 recipe) in espnet_cls.

``Classifier.from_pretrained`` and stage 7 (``espnet_cls.bin.cls_inference``) hand ESPnet
layouts to this package: an ESPnet exp dir, a zip packed by ``espnet2.bin.pack cls`` (ESPnet
cls.sh stage 9, the espnet_model_zoo layout) or an unpacked one / Hub repo. Its ``config.yaml``
is converted to ours (:mod:`espnet_cls.espnet.config`, ESPnet's constructor defaults filled in)
and its state dict mapped onto our modules (:mod:`espnet_cls.espnet.state_dict`), so that the
model computes what ESPnet's ``cls_inference`` computes (tested against real ESPnet:
tests/test_espnet_oracle.py, ``pytest -m espnet``).
"""

from espnet_cls.espnet.config import EspnetModelError, convert_config
from espnet_cls.espnet.loader import (
    convert_to_ours,
    is_espnet_exp_dir,
    is_espnet_model,
    is_espnet_weights,
    load_espnet_model,
    zip_is_espnet,
)

__all__ = ["EspnetModelError", "convert_config", "convert_to_ours", "is_espnet_exp_dir", "is_espnet_model", "is_espnet_weights", "load_espnet_model", "zip_is_espnet"]
