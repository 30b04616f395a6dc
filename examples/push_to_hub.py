#!/usr/bin/env python
"""Upload a saved FS-Diff pipeline (weights + a model card) to the Hugging Face Hub.

    hf auth login                                         # once: stores your token (older: huggingface-cli login)
    python examples/push_to_hub.py your-name/fsdiff-ir-vis                      # the shipped model, float32
    python examples/push_to_hub.py your-name/fsdiff-ir-vis --variant fp16       # + *.fp16.safetensors, half size
    python examples/push_to_hub.py your-name/fsdiff-mine --model fsdiff-finetuned --private
    python examples/push_to_hub.py your-name/fsdiff-ir-vis --dry_run upload-preview    # no network

`pipe.push_to_hub(repo_id)` creates the repository if needed, saves the pipeline with `save_pretrained` into a
temporary folder, writes the model card (`README.md`: the card saved with the model, such as the training script's with
its training details, else a new one with tags, usage and component sizes) and uploads the folder. Without
--token it uses the token of `hf auth login` (or the `HF_TOKEN` environment variable). Run it once plain and once with
--variant fp16 to offer both, as Diffusers repositories do; users then pick with
`FSDiffPipeline.from_pretrained(repo_id, variant="fp16", dtype=torch.float16)`. --dry_run writes exactly that
folder to a local directory instead, to look at before uploading.
"""

import argparse
from pathlib import Path

import torch

from _common import load_pipeline
from fsdiff_diffusers import DEFAULT_MODEL, FSDiffPipeline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo_id", help="Hub repository, 'user/name' or 'org/name' (a bare name goes to your user).")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Saved pipeline folder to upload.")
    parser.add_argument("--variant", choices=["fp16"], default=None, help="Upload float16 *.fp16.safetensors.")
    parser.add_argument("--private", action="store_true", default=None, help="Create the repository as private.")
    parser.add_argument("--token", default=None, help="Hub token with write access (default: the logged-in one).")
    parser.add_argument("--commit_message", default=None)
    parser.add_argument("--create_pr", action="store_true", help="Open a pull request instead of committing.")
    parser.add_argument("--dry_run", metavar="DIR", nargs="?", const="upload-preview", default=None,
                        help="Write what would be uploaded to DIR (default: upload-preview); no network.")  # fmt: skip
    return parser.parse_args(argv)


def save_upload_folder(pipe: FSDiffPipeline, repo_id: str, folder: str | Path, variant: str | None) -> Path:
    """What `pipe.push_to_hub(repo_id, variant=variant)` uploads: the saved pipeline and its model card."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder} is not empty: pick a new folder, so that it holds exactly the upload.")
    pipe.save_pretrained(folder, variant=variant)
    pipe.upload_card(repo_id).save(folder / "README.md")
    return folder


def main(argv: list[str] | None = None) -> str:
    """Upload (or with --dry_run, write locally); returns the commit URL or the folder."""
    args = parse_args(argv)
    pipe = load_pipeline(args.model, device=None, dtype=torch.float16 if args.variant == "fp16" else None)

    if args.dry_run is not None:
        folder = save_upload_folder(pipe, args.repo_id, args.dry_run, args.variant)
        print(f"Dry run: the upload to {args.repo_id} would hold ({folder}):")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            print(f"  {path.relative_to(folder)}  ({path.stat().st_size / 1e6:.2f} MB)")
        return str(folder)

    url = pipe.push_to_hub(
        args.repo_id,
        commit_message=args.commit_message,
        private=args.private,
        token=args.token,
        create_pr=args.create_pr,
        variant=args.variant,
    )
    print(f"Uploaded {args.model} to {args.repo_id}: {url}")
    return str(url)


if __name__ == "__main__":
    main()
