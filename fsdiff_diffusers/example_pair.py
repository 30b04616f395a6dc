"""A synthetic, registered infrared + visible pair of one made-up street scene, for demos, docs and tests.

Nothing here comes from a data set: the scene is drawn procedurally. It is built so that fusion has something to
show: two people the visible camera cannot see (one behind smoke, one in the shadow of a building) and a car's
engine are the hottest things in the infrared view, while the visible view holds the texture and colour (sky,
grass, brick, windows, trees, road markings) the infrared view lacks.

```py
>>> from fsdiff_diffusers import DEFAULT_MODEL, FSDiffPipeline
>>> from fsdiff_diffusers.example_pair import example_pair

>>> infrared, visible = example_pair()  # 160x120 "L" and "RGB"
>>> pipe = FSDiffPipeline.from_pretrained(DEFAULT_MODEL)
>>> fused = pipe(infrared=infrared, visible=visible, scale=4).images[0]  # 640x480 RGB
```
"""


import numpy as np
import PIL.Image
import torch

from .filters import gaussian_blur

HIDDEN_WARM_OBJECTS: dict[str, tuple[float, float, float, float]] = {
    "person in smoke": (0.605, 0.50, 0.675, 0.72),
    "person in shadow": (0.375, 0.46, 0.445, 0.70),
}
"""Boxes `(left, top, right, bottom)`, as fractions of the width and height, of the people that are warm in the
infrared view and hidden in the visible one."""

MIN_SIZE = (32, 24)
"""The smallest `(width, height)` [`example_pair`] draws."""

_SUPERSAMPLE = 4  # shapes are drawn on a finer grid and box-averaged down: anti-aliased edges
_HORIZON = 0.42


class _Canvas:
    """Normalised coordinates of a supersampled grid and the shape masks drawn on it (float, 1 inside)."""

    def __init__(self, width: int, height: int):
        rows, columns = height * _SUPERSAMPLE, width * _SUPERSAMPLE
        self.v = ((np.arange(rows) + 0.5) / rows)[:, None]  # (rows, 1), 0 at the top, 1 at the bottom
        self.u = ((np.arange(columns) + 0.5) / columns)[None, :]  # (1, columns), 0 left, 1 right
        self.aspect = width / height
        self.shape = (rows, columns)

    def rgb(self, red, green, blue) -> np.ndarray:
        """Stacks three channels (numbers or arrays broadcastable to the grid) into an `(rows, columns, 3)` image."""
        return np.stack([np.broadcast_to(channel, self.shape) for channel in (red, green, blue)], axis=-1)

    def box(self, left: float, top: float, right: float, bottom: float) -> np.ndarray:
        return ((self.u >= left) & (self.u < right) & (self.v >= top) & (self.v < bottom)).astype(np.float64)

    def ellipse(self, u: float, v: float, radius_u: float, radius_v: float) -> np.ndarray:
        """An ellipse centred at `(u, v)`; both radii are fractions of the height, so equal radii draw a circle."""
        du, dv = (self.u - u) * self.aspect / radius_u, (self.v - v) / radius_v
        return (du**2 + dv**2 <= 1.0).astype(np.float64)

    def blob(self, u: float, v: float, radius: float) -> np.ndarray:
        """A Gaussian bump of peak 1 and standard deviation `radius` (a fraction of the height)."""
        return np.exp(-(((self.u - u) * self.aspect) ** 2 + (self.v - v) ** 2) / (2 * radius**2))

    def person(self, u: float, top: float, height: float) -> np.ndarray:
        """A standing person: head, torso and two legs, `height` tall with the head's top at `top`."""
        span = height / self.aspect  # `height` as a fraction of the width, for horizontal sizes
        hips, feet = top + 0.58 * height, top + height
        head = self.ellipse(u, top + 0.09 * height, 0.075 * height, 0.09 * height)
        torso = self.box(u - 0.14 * span, top + 0.18 * height, u + 0.14 * span, hips)
        legs = self.box(u - 0.11 * span, hips, u - 0.015 * span, feet) + self.box(
            u + 0.015 * span, hips, u + 0.11 * span, feet
        )
        return np.clip(head + torso + legs, 0.0, 1.0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Zero-mean noise of unit standard deviation, smooth over `cells = (rows, columns)` cells of the image."""
    coarse = rng.standard_normal(cells).astype(np.float32)
    image = PIL.Image.fromarray(coarse).resize(shape[::-1], PIL.Image.BICUBIC)
    field = np.asarray(image, dtype=np.float64)
    return (field - field.mean()) / (field.std() + 1e-12)


def _paint(image: np.ndarray, mask: np.ndarray, value) -> np.ndarray:
    """Alpha-blends `value` (a number, a colour or an image) into `image` where `mask` (0..1) is set."""
    alpha = mask[..., None] if image.ndim == 3 else mask
    return image * (1 - alpha) + np.asarray(value) * alpha


def _downsample(image: np.ndarray) -> np.ndarray:
    """Box-averages the supersampled grid `(S H, S W[, C])` down to `(H, W[, C])`."""
    rows, columns = image.shape[0] // _SUPERSAMPLE, image.shape[1] // _SUPERSAMPLE
    return image.reshape(rows, _SUPERSAMPLE, columns, _SUPERSAMPLE, *image.shape[2:]).mean(axis=(1, 3))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)


def example_pair(width: int = 160, height: int = 120, seed: int = 0) -> tuple[PIL.Image.Image, PIL.Image.Image]:
    """Draws a synthetic, registered low-resolution infrared + visible pair of one made-up street scene.

    The scene: sky, grass, a brick building with windows and its shadow, two trees, a road with dashed markings and a
    red car. In the visible view one person stands behind a cloud of smoke and another, in dark clothes, in the
    building's shadow: both are close to invisible. In the infrared view (long-wave, smoke is transparent to it)
    the people and the car's engine are the hottest things, over a smooth, cold-sky, warm-road background. Both
    views have mild sensor noise and share one geometry pixel for pixel. [`HIDDEN_WARM_OBJECTS`] says where the
    people are.

    The layout scales with the size; `seed` changes only the textures and the noise. The same arguments always give
    the same pixels. This is not real data: use it to try the pipeline, not to measure it.

    Args:
        width (`int`, defaults to 160): image width in pixels, at least 32.
        height (`int`, defaults to 120): image height in pixels, at least 24.
        seed (`int`, defaults to 0): seed of the textures and the noise.

    Returns:
        `(infrared, visible)`: PIL images of size `(width, height)`, mode "L" `(H, W)` and mode "RGB" `(H, W, 3)`.
    """
    if width < MIN_SIZE[0] or height < MIN_SIZE[1]:
        raise ValueError(f"example_pair draws images of at least {MIN_SIZE[0]}x{MIN_SIZE[1]}, got {width}x{height}.")
    rng = np.random.default_rng(seed)
    canvas = _Canvas(width, height)
    u, v = canvas.u, canvas.v
    texture = _smooth_noise(rng, canvas.shape, (height // 2, width // 2))  # fine: grass, leaves, asphalt
    patches = _smooth_noise(rng, canvas.shape, (4, 5))  # coarse: uneven ground temperature and colour

    # Background: sky over grass; the infrared sky is cold, the ground smooth and lukewarm.
    sky = canvas.box(0.0, 0.0, 1.0, _HORIZON)
    sky_colour = canvas.rgb(
        *(top + (horizon - top) * v / _HORIZON for top, horizon in ((0.35, 0.80), (0.55, 0.87), (0.85, 0.95)))
    )
    grass = canvas.rgb(0.33 + 0.05 * patches, 0.50 + 0.04 * patches, 0.22 + 0.02 * patches)
    visible = _paint(grass * (1 + 0.18 * texture[..., None]), sky, sky_colour)
    infrared = _paint(0.38 + 0.03 * patches, sky, 0.10 + 0.12 * v / _HORIZON)

    # Road with dashed markings: asphalt holds the sun's heat, the paint looks a little cooler.
    road = canvas.box(0.0, 0.74, 1.0, 0.90)
    markings = road * canvas.box(0.0, 0.812, 1.0, 0.828) * ((u * 7) % 1 < 0.5)
    asphalt = 0.34 + 0.04 * texture
    visible = _paint(visible, road, canvas.rgb(asphalt, asphalt, asphalt + 0.01))
    visible = _paint(visible, markings, (0.95, 0.95, 0.88))
    infrared = _paint(_paint(infrared, road, 0.52), markings, 0.46)

    # Building (brick wall, flat roof, windows leaking heat, a door); its shadow on the grass comes after the people.
    wall = canvas.box(0.05, 0.14, 0.34, 0.64)
    roof = canvas.box(0.04, 0.12, 0.35, 0.18)
    courses = (np.floor(v * height * 1.5) % 2 == 0) * 0.06  # brick courses
    windows = sum(
        canvas.box(0.08 + 0.09 * column, 0.22 + 0.10 * row, 0.13 + 0.09 * column, 0.29 + 0.10 * row)
        for column in range(3)
        for row in range(3)
    )
    door = canvas.box(0.17, 0.52, 0.22, 0.64)
    shadow = canvas.box(0.34, _HORIZON, 0.48, 0.74) * (u - 0.34 < 0.13 - (0.74 - v) * 0.08)
    brick = canvas.rgb(0.72 - courses + 0.03 * texture, 0.45 - courses, 0.33 - courses)
    visible = _paint(_paint(visible, wall, brick), roof, (0.30, 0.28, 0.30))
    visible = _paint(_paint(visible, windows, (0.28, 0.38, 0.52)), door, (0.35, 0.22, 0.12))
    infrared = _paint(_paint(infrared, wall, 0.42), roof, 0.30)
    infrared = _paint(_paint(infrared, windows, 0.60), door, 0.52)

    # The hidden people, warm bodies: one in green clothes in the shadow, one that the smoke will cover.
    for name, colour in (("person in shadow", (0.28, 0.42, 0.19)), ("person in smoke", (0.30, 0.30, 0.32))):
        left, top, right, bottom = HIDDEN_WARM_OBJECTS[name]
        person = canvas.person((left + right) / 2, top, bottom - top)
        visible = _paint(visible, person, colour)
        infrared = _paint(infrared, person, 0.93)
    visible = visible * (1 - 0.78 * shadow)[..., None]
    infrared = infrared - 0.06 * shadow

    # Trees: leafy canopies, cool in the infrared view (they transpire).
    for centre, top in ((0.52, 0.16), (0.93, 0.20)):
        trunk = canvas.box(centre - 0.012, top + 0.18, centre + 0.012, 0.60)
        canopy = canvas.ellipse(centre, top + 0.12, 0.11, 0.13)
        leaves = canvas.rgb(0.14 + 0.05 * texture, 0.36 + 0.08 * texture, 0.12 + 0.03 * texture)
        visible = _paint(_paint(visible, trunk, (0.38, 0.26, 0.15)), canopy, leaves)
        infrared = _paint(_paint(infrared, trunk, 0.33), canopy, 0.30 + 0.02 * texture)

    # Red car on the road: the engine at the front and the tyres are warm, the windows mirror the cold sky.
    body = canvas.box(0.70, 0.70, 0.97, 0.82)
    cabin = canvas.box(0.74, 0.63, 0.88, 0.71) * (np.abs(u - 0.81) < 0.07 - (0.70 - v) * 0.5)
    glass = canvas.box(0.755, 0.645, 0.865, 0.70) * cabin
    engine = body * canvas.box(0.89, 0.70, 0.97, 0.77)
    wheels = canvas.ellipse(0.76, 0.82, 0.035, 0.035) + canvas.ellipse(0.91, 0.82, 0.035, 0.035)
    exhaust = canvas.blob(0.685, 0.80, 0.02)
    visible = _paint(_paint(visible, body + cabin - glass, (0.62, 0.07, 0.07)), glass, (0.18, 0.22, 0.28))
    visible = _paint(visible, wheels, (0.05, 0.05, 0.05))
    infrared = _paint(_paint(infrared, body + cabin - glass, 0.44), glass, 0.25)
    infrared = _paint(_paint(_paint(infrared, engine, 0.86), wheels, 0.68), exhaust, 0.74)

    # Smoke over the second person: opaque to the visible camera, nearly transparent to long-wave infrared.
    smoke = np.clip(
        1.6
        * sum(
            canvas.blob(0.64 + du, 0.60 + dv, r)
            for du, dv, r in ((0.0, 0.0, 0.07), (-0.05, -0.06, 0.05), (0.05, 0.05, 0.05), (0.02, -0.09, 0.04))
        ),
        0.0,
        0.97,
    ) * (1 + 0.05 * texture)
    visible = _paint(visible, np.clip(smoke, 0.0, 1.0), (0.70, 0.70, 0.68))
    infrared = infrared + 0.03 * smoke

    # Down to the output size; thermal optics are softer; mild sensor noise (thermal: fixed-pattern columns too).
    visible, infrared = _downsample(visible), _downsample(infrared)
    infrared = gaussian_blur(torch.from_numpy(infrared), radius=2, sigma=0.7).numpy()
    visible = visible + rng.normal(0.0, 0.012, visible.shape)
    infrared = infrared + rng.normal(0.0, 0.012, infrared.shape) + rng.normal(0.0, 0.006, (1, width))
    return PIL.Image.fromarray(_to_uint8(infrared)), PIL.Image.fromarray(_to_uint8(visible))
