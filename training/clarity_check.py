"""
Does a pipeline's clarity head see how degraded each source is? Its predictions against the known degradation of
held-out pairs, as a Spearman rank correlation and a mean absolute error.

    python training/clarity_check.py --model fsdiff-ir-vis --infrared_dir ../shared/data/TNO/ir \
        --visible_dir ../shared/data/TNO/vi --limit 12

Each pair's top-left crop is degraded three times, each source on its own, as the training script does (random blur
and noise per modality from `DegradationLimits`, one bicubic downscale factor in 2-8 per pair), and upsampled back;
the encoder's clarity map of each source, averaged over the image, is compared with `clarity_label` of what was
applied. A clarity head that has learned ranks the degradations (Spearman near 1) and beats the error of always
predicting the mean label; one that has not scores a Spearman near 0 and the error of that constant guess.
"""

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from fsdiff_diffusers import SHIPPED_MODELS, ClarityMambaEncoder, FSDiffPipeline
from fsdiff_diffusers.degradations import DegradationLimits, clarity_label, degrade, sample_degradation
from fsdiff_diffusers.image_processor import load_image, resize, to_luminance
from fsdiff_diffusers.pairing import scan_pairs


@dataclass(frozen=True)
class ClarityAgreement:
    """How a clarity head's predictions agree with the true labels of `count` degraded sources."""

    count: int
    spearman: float
    mean_absolute_error: float
    constant_guess_error: float

    def __str__(self) -> str:
        return (
            f"{self.count} degraded sources: Spearman {self.spearman:.3f}, mean absolute error "
            f"{self.mean_absolute_error:.3f} (always guessing the mean label: {self.constant_guess_error:.3f})"
        )


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays of continuous values (ties are not averaged)."""
    ranks = [np.argsort(np.argsort(values)).astype(np.float64) for values in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


@torch.no_grad()
def clarity_agreement(
    encoder: ClarityMambaEncoder,
    pairs: list[torch.Tensor],
    trials: int = 3,
    limits: DegradationLimits = DegradationLimits(),
    seed: int = 0,
) -> ClarityAgreement:
    """
    Args:
        encoder ([`ClarityMambaEncoder`]): The encoder to check.
        pairs (`list` of `torch.Tensor` of shape `(2, H, W)`): HR source luminance in [0, 1], H and W multiples of
            the encoder's stride.
        trials (`int`, defaults to 3): Random degradations per pair.
        limits ([`DegradationLimits`]): The range of blur and noise drawn (and the labels' normalisation).
        seed (`int`, defaults to 0): Seeds the degradations.
    """
    generator = torch.Generator().manual_seed(seed)
    predictions, labels = [], []
    for sources in pairs:
        for _ in range(trials):
            scale = float(torch.empty(1).uniform_(2, limits.max_scale, generator=generator))
            conditions = []
            for source in sources:
                strength = sample_degradation(generator, limits)
                low = degrade(source[None, None], scale, strength.blur_sigma, strength.noise_std, generator)
                conditions.append(resize(low, tuple(source.shape))[0])
                labels.append(clarity_label(scale, strength.blur_sigma, strength.noise_std, limits))
            clarity = encoder(torch.cat(conditions)[None] * 2 - 1).clarity
            predictions += clarity.float().mean(dim=(2, 3))[0].tolist()
    predictions, labels = np.array(predictions), np.array(labels)
    return ClarityAgreement(
        count=len(labels),
        spearman=spearman(predictions, labels),
        mean_absolute_error=float(np.abs(predictions - labels).mean()),
        constant_guess_error=float(np.abs(labels - labels.mean()).mean()),
    )


def load_pairs(infrared_dir: str, visible_dir: str, size: int, limit: int | None) -> list[torch.Tensor]:
    """The luminance of the first `limit` pairs matched by stem, each cropped to its top-left `size` x `size`."""
    pairs = []
    for pair in scan_pairs(infrared_dir, visible_dir).pairs[:limit]:
        images = [to_luminance(load_image(path, name))[0][0] for name, path in pair.paths.items()]
        if min(images[0].shape) < size:
            raise ValueError(f"Pair {pair.stem!r} is {tuple(images[0].shape)}, smaller than --crop {size}.")
        pairs.append(torch.stack([image[:size, :size] for image in images]))
    return pairs


def main(argv: list[str] | None = None) -> ClarityAgreement:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--model", required=True, help="A pipeline folder, Hub id, or shipped name (fsdiff-ir-vis).")
    parser.add_argument("--infrared_dir", required=True, help="Folder of the first sources (infrared or MRI).")
    parser.add_argument("--visible_dir", required=True, help="Folder of the second sources, matched by file stem.")
    parser.add_argument("--limit", type=int, default=12, help="At most this many pairs (default: 12).")
    parser.add_argument("--crop", type=int, default=192, help="Top-left crop size in HR pixels (default: 192).")
    parser.add_argument("--trials", type=int, default=3, help="Random degradations per pair (default: 3).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    encoder = FSDiffPipeline.from_pretrained(SHIPPED_MODELS.get(args.model, args.model)).clarity_encoder.eval()
    pairs = load_pairs(args.infrared_dir, args.visible_dir, args.crop, args.limit)
    agreement = clarity_agreement(encoder, pairs, trials=args.trials, seed=args.seed)
    print(agreement)
    return agreement


if __name__ == "__main__":
    main()
