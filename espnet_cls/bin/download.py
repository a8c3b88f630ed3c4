"""Fetch a packed model from the Hugging Face Hub and lay it out for stage 7 (``--download_model``).

    python -m espnet_cls.bin.download --repo_id user/name --output_dir exp/user_name

Writes ``<output_dir>/config.yaml`` (paths rewritten to point into ``output_dir``) and the
weights ``<output_dir>/model.safetensors``, so stage 7 runs with
``--classification_train_config <output_dir>/config.yaml
--classification_model_file <output_dir>/model.safetensors`` (cls.sh: ``inference_model=model.safetensors``).
``--write_pth true`` also writes ``model.pth`` (a plain state_dict). ``--repo_id`` may also
be a local packed ``.zip`` or folder. Prints the inference model file name on stdout.
"""

from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo_id", required=True, help="user/name on the Hub, or a local packed .zip or folder")
    p.add_argument("--output_dir", required=True, help="model folder to write, e.g. exp/<name>")
    p.add_argument("--revision", type=str_or_none, default=None, help="branch, tag or commit (default: main)")
    p.add_argument("--write_pth", type=str2bool, default=False, help="also write model.pth (plain state_dict)")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv``, download, print the inference model file name; returns the exit status."""
    from espnet_cls.hub import download

    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    info = download(args.repo_id, args.output_dir, revision=args.revision, write_pth=args.write_pth)
    logging.getLogger(__name__).info("config: %s; model file: %s", info["config"], info["model_file"])
    print(info["inference_model"])
    return 0


if __name__ == "__main__":
    run_main(main)
