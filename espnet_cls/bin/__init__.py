"""Entry points: ``python -m espnet_cls.bin.<name> --help``."""
