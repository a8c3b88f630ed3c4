"""Stage-1 data preparation: offline demo corpora and importers for corpora on disk.

Demo corpora (made from sound that installs from PyPI, nothing downloaded):
:mod:`espnet_cls.data.instruments` (``instruments``, ``instruments_mix``) and
:mod:`espnet_cls.data.lid` (``lid``). Importers: :mod:`espnet_cls.data.esc50`,
:mod:`espnet_cls.data.audioset`, :mod:`espnet_cls.data.folder` (folder per class)
and :mod:`espnet_cls.data.csvlist` (csv/tsv list). :mod:`espnet_cls.data.prepare`
is the entry point behind ``local/data.sh``; :mod:`espnet_cls.data.baseline` is the
log-mel + logistic-regression reference score.
"""
