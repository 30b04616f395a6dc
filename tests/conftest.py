"""Shared fixtures: tiny randomly initialised components (fast on CPU) and the real data folder."""

from pathlib import Path

import numpy as np
import pytest
import torch

from fsdiff_diffusers import ClarityMambaEncoder, FSDiffPipeline, FSDiffUNet2DModel, default_scheduler

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_unet(**overrides) -> FSDiffUNet2DModel:
    config = dict(
        block_out_channels=(16, 32),
        layers_per_block=1,
        cross_attention_levels=(False, True),
        mamba_levels=(False, True),
        cross_attention_dim=32,
        attention_head_dim=16,
        encoder_feature_channels=(8, 16),
        norm_num_groups=8,
    )
    config.update(overrides)
    return FSDiffUNet2DModel(**config)


def tiny_encoder(**overrides) -> ClarityMambaEncoder:
    config = dict(
        block_out_channels=(8, 16),
        clarity_level=1,
        num_mamba_layers=1,
        context_dim=32,
        context_grid=2,
        norm_num_groups=2,
    )
    config.update(overrides)
    return ClarityMambaEncoder(**config)


def tiny_pipeline(seed: int = 0, **components) -> FSDiffPipeline:
    """A tiny pipeline with weights drawn from `seed`; `components` replace the defaults."""
    torch.manual_seed(seed)
    parts = dict(unet=tiny_unet(), clarity_encoder=tiny_encoder(), scheduler=default_scheduler())
    parts.update(components)
    pipeline = FSDiffPipeline(**parts)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture
def pipe() -> FSDiffPipeline:
    return tiny_pipeline()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny pipeline saved with `save_pretrained`, for the command-line tests; its U-Net predicts the sample, like
    the shipped models'."""
    folder = tmp_path_factory.mktemp("tiny_model")
    tiny_pipeline(unet=tiny_unet(prediction_type="sample"), scheduler=default_scheduler("sample")).save_pretrained(
        folder
    )
    return folder


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A small synthetic pair: grey 'infrared' (H, W) uint8 and colour 'visible' (H, W, 3) uint8, 12x16."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 16), dtype=np.uint8), rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)


@pytest.fixture
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f"real image pairs not found at {DATA_DIR} (the shared data folder beside the checkout)")
    return DATA_DIR


@pytest.fixture
def one_thread():
    """Tiny models: one intra-op thread is faster, and does not stall when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def two_step_fusion(pipe: FSDiffPipeline, infrared: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The call the Hub and remote-code tests compare between loaders: x2, 2 steps, seed 0, numpy output."""
    return pipe(
        infrared=infrared,
        visible=visible,
        scale=2,
        num_inference_steps=2,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images


def random_sources(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A grey 12x16 infrared and a colour visible image of random float32 values in [0, 1)."""
    rng = np.random.default_rng(seed)
    return rng.random((12, 16)).astype(np.float32), rng.random((12, 16, 3)).astype(np.float32)
