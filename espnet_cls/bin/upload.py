"""Stage 10: upload a packed model with a generated model card to the Hugging Face Hub.

    python -m espnet_cls.bin.upload --packed_model exp/cls_X/cls_X_valid.acc.best.zip --hf_repo user/name

Uses ``huggingface_hub`` (``HfApi.create_repo`` + ``upload_folder``); no git or git-lfs.
The token comes from ``HF_TOKEN`` or ``huggingface-cli login`` and is never logged.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
from typing import Optional, Sequence

from espnet_cls.cli import run_main, setup_logging, str2bool, str_or_none


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--packed_model", required=True, help="the zip written by stage 9")
    p.add_argument("--hf_repo", required=True, help="user/name on the Hub (created if missing)")
    p.add_argument("--private", type=str2bool, default=False, help="create the repo as private")
    p.add_argument("--datasets", nargs="*", default=[], help="dataset ids/names for the model card")
    p.add_argument("--license", default="cc-by-4.0", help="license in the model card")
    p.add_argument("--creator", type=str_or_none, default=None, help="who trained it (default: git config user.name)")
    p.add_argument("--language", nargs="*", default=None, help="language codes for the model card")
    p.add_argument("--commit_message", default="Upload espnet_cls model")
    p.add_argument("--revision", type=str_or_none, default=None, help="branch to commit to (default: main)")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _git_user() -> Optional[str]:
    try:
        r = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv``, upload; returns the exit status."""
    from espnet_cls.hub import install_token_filter, upload

    args = get_parser().parse_args(argv)
    setup_logging(args.log_level)
    install_token_filter()
    url = upload(
        args.packed_model,
        args.hf_repo,
        private=args.private,
        commit_message=args.commit_message,
        revision=args.revision,
        datasets=args.datasets,
        license=args.license,
        creator=args.creator or _git_user(),
        language=args.language,
    )
    logging.getLogger(__name__).info("done: %s", url)
    return 0


if __name__ == "__main__":
    run_main(main)
