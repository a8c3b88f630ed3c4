"""Use a trained model anywhere: ``Classifier.from_pretrained(...)`` then ``clf("a.wav")``.

::

    from espnet_cls import Classifier

    clf = Classifier.from_pretrained("exp/cls_X/cls_X_valid.acc.best.zip")  # or a folder, or "user/name" on the Hub
    pred = clf("a.wav")                 # Prediction(labels=['violin'], scores=[('violin', 0.93), ...])
    preds = clf.predict_files(["a.wav", "b.flac"], batch_size=8)
    pred = clf(np_array, sample_rate=44100)   # [frames] or [frames, channels]

Audio is decoded, downmixed and resampled exactly as stage 2 does
(:func:`espnet_cls.audio.load_audio` for paths, :func:`espnet_cls.audio.load_array` for
arrays; libsoxr HQ), and the model rounds its input to the 16-bit grid of the dump, so a
clip gets the scores stage 7 gives it. Scoring is :class:`espnet_cls.inference.BatchInference`
(stage 7's engine: length-sorted batches; padding does not change a clip's scores), and
decisions are :func:`espnet_cls.contract.decide`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from espnet_cls.fileio import DataError

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
AudioInput = Union[PathLike, np.ndarray, Any]

#: weights file names tried, in order, in a folder without meta.yaml (an exp dir)
DEFAULT_MODEL_FILES = ("model.safetensors", "valid.acc.best.pth", "valid.acc.ave.pth", "valid.mAP.best.pth", "model.pth")


@dataclass
class Prediction:
    """One clip's result.

    ``labels``: the decision (argmax for multi-class; every class with probability >=
    ``threshold`` for multi-label, possibly none). ``scores``: ``(label, probability)``
    pairs, highest first (all classes, or the ``top_k`` best). ``probs``: every class's
    probability in token-list order.
    """

    labels: list[str]
    scores: list[tuple[str, float]]
    probs: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        """JSON-ready form: ``{"labels": [...], "scores": {label: prob, ...}}`` (best first)."""
        return {"labels": list(self.labels), "scores": {k: float(v) for k, v in self.scores}}


def _is_hub_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/", "~")) and not os.path.exists(s)


class Classifier:
    """A loaded model plus what inference needs: classes, sample rate, threshold.

    Build it with :meth:`from_pretrained`. ``model``: a :class:`espnet_cls.models.cls_model.CLSModel`
    in eval mode; ``config``: its config dict.
    """

    def __init__(self, model: Any, config: dict, device: str = "cpu", threshold: float = 0.5, source: str = ""):
        from espnet_cls.contract import model_facts

        self.model = model.eval()
        self.config = config
        self.device = device
        self.threshold = float(threshold)
        self.source = source
        self.classes: list[str] = list(model.token_list[: model.n_classes])
        self.classification_type: str = model.classification_type
        self.sample_rate: int = model_facts(config).fs

    def __repr__(self) -> str:
        return (
            f"Classifier(source={self.source!r}, {self.classification_type}, {len(self.classes)} classes, "
            f"fs={self.sample_rate}, device={self.device!r})"
        )

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        source: PathLike,
        device: str = "cpu",
        model_file: Optional[PathLike] = None,
        revision: Optional[str] = None,
        threshold: float = 0.5,
    ) -> Classifier:
        """Load from a packed ``.zip``, a model folder, or a Hub repo id ``user/name``.

        Models trained by real ESPnet load as they are: its exp dirs, the zips of its pack
        stage and Hub repos in its layout (:mod:`espnet_cls.espnet`).

        A folder is either an unpacked archive (``meta.yaml``, ``config.yaml``,
        ``model.safetensors``) or an experiment dir (``config.yaml`` and ``model_file``,
        default the first of :data:`DEFAULT_MODEL_FILES` present). A zip is unpacked into
        a temporary folder that is removed once the weights are loaded. Hub repos are
        fetched with ``snapshot_download`` (cached by huggingface_hub).
        """
        src = str(source)
        if os.path.exists(src):
            from espnet_cls import espnet

            if espnet.is_espnet_model(src) or (model_file is not None and espnet.is_espnet_exp_dir(src, model_file)):
                return cls._from_espnet(src, device, model_file, threshold, src)
        if os.path.isfile(src):
            if not src.endswith(".zip"):
                raise DataError("expected a packed model .zip, a model folder or a Hub repo id", src)
            from espnet_cls.pack import unpack

            with tempfile.TemporaryDirectory(prefix="espnet_cls_model.") as tmp:
                unpack(src, tmp)
                return cls._from_dir(Path(tmp), device, None, threshold, src)
        if os.path.isdir(src):
            return cls._from_dir(Path(src), device, model_file, threshold, src)
        if _is_hub_id(src):
            from huggingface_hub import snapshot_download

            try:
                folder = snapshot_download(repo_id=src, revision=revision)
            except Exception as e:
                why = str(e).splitlines()[0] if str(e) else ""
                raise DataError(f"not a local file or folder, and fetching it from the Hugging Face Hub failed: {type(e).__name__}: {why}", src) from None
            from espnet_cls import espnet

            if espnet.is_espnet_model(folder):  # a Hub repo in ESPnet's layout (meta.yaml + exp/...)
                return cls._from_espnet(folder, device, model_file, threshold, src)
            return cls._from_dir(Path(folder), device, model_file, threshold, src)
        raise DataError("no such file or folder (and not a Hub repo id user/name)", src)

    @classmethod
    def _from_espnet(cls, path: str, device: str, model_file: Optional[PathLike], threshold: float, source: str) -> Classifier:
        """A model trained by real ESPnet (exp dir, packed zip, Hub repo): :mod:`espnet_cls.espnet`."""
        from espnet_cls.espnet import load_espnet_model

        model, config = load_espnet_model(path, model_file=model_file, device=device)
        logger.info("loaded the ESPnet model %s", source)
        return cls(model, config, device=device, threshold=threshold, source=source)

    @classmethod
    def _from_dir(cls, folder: Path, device: str, model_file: Optional[PathLike], threshold: float, source: str) -> Classifier:
        from espnet_cls.pack import CONFIG, load_packed_config
        from espnet_cls.tasks.cls import load_model

        if not (folder / CONFIG).is_file():
            zips = sorted(folder.glob("*.zip"))
            if len(zips) == 1:
                return cls.from_pretrained(zips[0], device=device, threshold=threshold)
            raise DataError(f"no {CONFIG} in the model folder", str(folder))
        config, meta = load_packed_config(folder)
        if model_file is None:
            if meta.get("files", {}).get("model"):
                model_file = folder / meta["files"]["model"]
            else:
                found = [folder / n for n in DEFAULT_MODEL_FILES if (folder / n).is_file()]
                if not found:
                    raise DataError(f"no weights in the model folder (looked for {', '.join(DEFAULT_MODEL_FILES)})", str(folder))
                model_file = found[0]
        if not os.path.isfile(model_file):
            raise DataError("model file not found", str(model_file))
        try:
            model, config = load_model(config, model_file=str(model_file), device=device)
        except (ValueError, FileNotFoundError, RuntimeError) as e:
            raise DataError(f"cannot load the model: {str(e).splitlines()[0]}", str(model_file)) from None
        logger.info("loaded %s (%s)", source, model_file)
        return cls(model, config, device=device, threshold=threshold, source=source)

    # ------------------------------------------------------------------ audio
    def load(self, audio: AudioInput, sample_rate: Optional[int] = None) -> np.ndarray:
        """One clip as mono float32 at the model's rate.

        ``audio``: a path (or any ``wav.scp`` value, e.g. ``"sox a.mp3 -t wav - |"``), or an
        array ``[frames]`` / ``[frames, channels]`` (numpy or torch; float, or integer PCM)
        with ``sample_rate``.
        """
        from espnet_cls.audio import AudioError, load_array, load_audio

        if isinstance(audio, (str, os.PathLike)):
            try:
                x, _ = load_audio(str(audio), fs=self.sample_rate)
            except AudioError as e:
                raise DataError(str(e), str(audio)) from None
            return x
        if sample_rate is None:
            raise ValueError("an array input needs sample_rate=")
        try:
            return load_array(audio, int(sample_rate), self.sample_rate)
        except AudioError as e:
            raise ValueError(str(e)) from None

    # ------------------------------------------------------------------ inference
    def engine(self, batch_size: int = 8) -> Any:
        """Stage 7's :class:`espnet_cls.inference.BatchInference` over this model."""
        from espnet_cls.inference import BatchInference

        return BatchInference(self.model, fs=self.sample_rate, batch_size=max(1, int(batch_size)), device=self.device)

    def predict_proba(self, waves: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """Probabilities ``[N, n_classes]`` for mono clips at the model's rate (stage 7's engine)."""
        if not len(waves):
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return self.engine(batch_size).predict(list(waves)).astype(np.float32)

    def decide(self, probs: np.ndarray, top_k: Optional[int] = None) -> Prediction:
        """:class:`Prediction` from one clip's probabilities (the rule of stage 7: :func:`espnet_cls.contract.decide`)."""
        from espnet_cls.contract import decide

        probs = np.asarray(probs, dtype=np.float32)
        chosen = decide(probs, self.classification_type, self.threshold)[0]
        labels = [self.classes[i] for i in np.flatnonzero(chosen)]
        order = np.argsort(-probs, kind="stable")
        k = len(order) if top_k is None else max(0, int(top_k))
        scores = [(self.classes[int(i)], float(probs[int(i)])) for i in order[:k]]
        return Prediction(labels=labels, scores=scores, probs=probs)

    def predict(
        self,
        audios: Sequence[AudioInput],
        sample_rate: Optional[int] = None,
        batch_size: int = 8,
        top_k: Optional[int] = None,
    ) -> list[Prediction]:
        """Predictions for several clips (paths and/or arrays; arrays share ``sample_rate``).

        Clips are decoded ``chunk`` at a time (64 batches), so a long file list does not
        have to fit in memory at once; within a chunk, batches are formed by length.
        """
        audios = list(audios)
        chunk = 64 * max(1, int(batch_size))
        out: list[Prediction] = []
        for s in range(0, len(audios), chunk):
            waves = [self.load(a, sample_rate) for a in audios[s : s + chunk]]
            probs = self.predict_proba(waves, batch_size=batch_size)
            out += [self.decide(p, top_k) for p in probs]
        return out

    def predict_files(self, paths: Sequence[PathLike], batch_size: int = 8, top_k: Optional[int] = None) -> list[Prediction]:
        """Predictions for audio files, in the order given."""
        return self.predict(list(paths), batch_size=batch_size, top_k=top_k)

    def __call__(self, audio: AudioInput, sample_rate: Optional[int] = None, top_k: Optional[int] = None) -> Prediction:
        """Prediction for one clip (a path, or an array with ``sample_rate``)."""
        return self.predict([audio], sample_rate=sample_rate, batch_size=1, top_k=top_k)[0]
