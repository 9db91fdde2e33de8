"""Synthetic facades: p2pkit's offline default dataset.

[`synthesize_facades`][p2pkit.data.synth.synthesize_facades] writes a small dataset in the layout of
the pix2pix ``facades`` set, so the main example trains on a fresh machine without network access::

    out_dir/train/1.png ... out_dir/train/400.png
    out_dir/val/1.png   ... out_dir/val/50.png
    out_dir/classes.json   class names, ids and palette colours
    out_dir/README.txt     what this is

Each PNG is one aligned pair, ``size`` x ``2 * size`` pixels: the pseudo-photo (A) on the left
and the colour-coded label map (B) on the right, exactly like the real set, so "labels -> photo"
is direction ``BtoA``.

Label layouts are procedural facades: sky, a facade wall cut into floors and bays, windows with
frames, sills, shutters or blinds, balconies, pillars, a door, shop windows on the ground floor,
a cornice and a roof, with random counts, sizes and margins. Every image draws from its own
sub-seed ``(seed, split, index)``, so it is reproducible and independent of generation order.

The photo is rendered *from the layout*, almost deterministically: per-class colours with a
per-image tint and brightness, textures fixed relative to each drawn element (stone courses in
each storey, glass with a sky reflection, a glint and mullions, door panels, roof tiles, railing
bars, pillar shading), shadows cast by sills, cornices and balconies, and only faint noise. This
is what lets a pix2pix U-Net learn labels -> photo in minutes on a CPU with sharp,
label-aligned results: almost nothing in the photo is unpredictable from the labels.

Why this module is long: layout and renderer are one procedural model: every
texture and shadow is drawn from the geometry the layout produced, so the two are kept side by
side, where a change to one shows what it does to the other.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import track

from p2pkit.errors import DataError

__all__ = [
    "FACADE_CLASSES",
    "FACADE_PALETTE",
    "labels_to_rgb",
    "render_facade",
    "synthesize_facades",
]

FACADE_CLASSES: tuple[str, ...] = (
    "background",
    "facade",
    "window",
    "door",
    "cornice",
    "sill",
    "balcony",
    "blind",
    "pillar",
    "molding",
    "roof",
    "shop",
)
"""Class names; a class's id is its index."""

# A jet-like ramp from dark blue to dark red, in the spirit of the colour coding of the pix2pix
# facades label maps (not the same colours: this is a different class list).
FACADE_PALETTE: np.ndarray = np.array(
    [
        (0, 0, 170),  # background / sky
        (0, 0, 255),  # facade wall
        (0, 85, 255),  # window
        (0, 170, 255),  # door
        (0, 255, 255),  # cornice
        (85, 255, 170),  # sill
        (170, 255, 85),  # balcony
        (255, 255, 0),  # blind / shutter
        (255, 170, 0),  # pillar
        (255, 85, 0),  # molding (window frame, lintel)
        (255, 0, 0),  # roof
        (170, 0, 0),  # shop window
    ],
    dtype=np.uint8,
)
"""RGB colour of each class in the label maps, shape (12, 3), uint8."""
FACADE_PALETTE.setflags(write=False)

(
    BACKGROUND,
    FACADE,
    WINDOW,
    DOOR,
    CORNICE,
    SILL,
    BALCONY,
    BLIND,
    PILLAR,
    MOLDING,
    ROOF,
    SHOP,
) = range(len(FACADE_CLASSES))

_SPLITS = {"train": 0, "val": 1, "test": 2}


def labels_to_rgb(labels: np.ndarray) -> np.ndarray:
    """Colour a class-id map: (H, W) integer ids -> (H, W, 3) uint8 RGB from FACADE_PALETTE."""
    return FACADE_PALETTE[labels]


# --------------------------------------------------------------------------------------------
# Layout: rectangles painted in order onto a label map
# --------------------------------------------------------------------------------------------


class _Canvas:
    """A label map plus, for every pixel, which painted rectangle it came from.

    Remembering the rectangle lets the renderer place textures relative to each element (panes
    relative to their window, tiles relative to the roof's top edge), which is what makes the
    photo a local function of the label map.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.labels = np.full((size, size), BACKGROUND, dtype=np.uint8)
        self.rect_id = np.zeros((size, size), dtype=np.int32)
        self.rects: list[tuple[int, int, int, int]] = [(0, 0, size, size)]

    def paint(self, cls: int, x0: float, y0: float, x1: float, y1: float) -> None:
        """Paint ``cls`` over ``[x0, x1) x [y0, y1)`` (pixel units, clipped to the image)."""
        ix0, iy0, ix1, iy1 = round(x0), round(y0), round(x1), round(y1)
        if ix1 <= ix0 or iy1 <= iy0:
            return
        cx0, cy0 = max(ix0, 0), max(iy0, 0)
        cx1, cy1 = min(ix1, self.size), min(iy1, self.size)
        if cx1 <= cx0 or cy1 <= cy0:
            return
        self.rect_id[cy0:cy1, cx0:cx1] = len(self.rects)
        # The unclipped box is kept: a door's panels stay in place even if it runs off the image.
        self.rects.append((ix0, iy0, ix1, iy1))
        self.labels[cy0:cy1, cx0:cx1] = cls


def _layout(rng: np.random.Generator, size: int) -> _Canvas:
    """Draw one random facade layout (all sizes scale with ``size``; tuned at 128 px)."""
    c = _Canvas(size)
    s = float(size)
    unit = s / 128.0  # one pixel at 128 px

    # Building outline: sky on top, sometimes a gap to the neighbours on the sides.
    sky = rng.uniform(0.03, 0.14) * s
    if rng.random() < 0.35:
        bx0, bx1 = 0.0, s
    else:
        bx0, bx1 = rng.uniform(0.0, 0.12) * s, s - rng.uniform(0.0, 0.12) * s
    y = sky
    if rng.random() < 0.85:
        roof_h = rng.uniform(0.04, 0.1) * s
        inset = rng.uniform(0, 4) * unit
        c.paint(ROOF, bx0 + inset, y, bx1 - inset, y + roof_h)
        y += roof_h
    cornice_h = max(2.0, rng.uniform(2.5, 5.0) * unit)
    overhang = rng.uniform(0, 2.5) * unit
    c.paint(CORNICE, bx0 - overhang, y, bx1 + overhang, y + cornice_h)
    y += cornice_h

    # Storeys: the ground floor is taller than the others.
    n_floors = int(rng.integers(3, 6))
    ground_share = rng.uniform(1.2, 1.6)
    floor_h = (s - y) / (n_floors - 1 + ground_share)
    tops = [y + i * floor_h for i in range(n_floors)]
    ground_top = tops[-1]
    for top in tops[:-1]:
        # One wall rectangle per storey: the stone courses restart at every floor line.
        c.paint(FACADE, bx0, top, bx1, top + floor_h)
    c.paint(FACADE, bx0, ground_top, bx1, s)

    # Bays, separated by pillars on some buildings.
    n_cols = int(rng.integers(3, 8))
    edges = np.linspace(bx0, bx1, n_cols + 1)
    cell_w = (bx1 - bx0) / n_cols
    if rng.random() < 0.75:
        pw = max(2.0, rng.uniform(2.0, 4.5) * unit)
        pillar_top = tops[0] if rng.random() < 0.5 else tops[1]
        pillar_bottom = s if rng.random() < 0.5 else ground_top
        inner = rng.random() < 0.5
        for i, x in enumerate(edges):
            if i == 0:
                c.paint(PILLAR, x, pillar_top, x + pw, pillar_bottom)
            elif i == n_cols:
                c.paint(PILLAR, x - pw, pillar_top, x, pillar_bottom)
            elif inner:
                c.paint(PILLAR, x - pw / 2, pillar_top, x + pw / 2, pillar_bottom)

    # Window style, shared by the whole building.
    ww = rng.uniform(0.35, 0.6) * cell_w
    wh = rng.uniform(0.45, 0.62) * floor_h
    wtop = rng.uniform(0.14, 0.28) * floor_h
    fw = max(1.0, round(unit)) if rng.random() < 0.9 else 0.0
    lintel = float(rng.integers(0, 3)) * unit if fw else 0.0
    sill_h = max(1.0, rng.uniform(1.0, 2.2) * unit)
    sill_over = rng.uniform(0.5, 2.0) * unit
    blind_mode = rng.choice(["shutters", "blinds", "none"], p=[0.45, 0.4, 0.15])
    blind_p = rng.uniform(0.4, 0.9)
    balcony_p = 0.0 if rng.random() < 0.15 else rng.uniform(0.3, 0.8)
    balcony_floors = [rng.random() < balcony_p for _ in tops[:-1]]
    if balcony_p > 0 and not any(balcony_floors):
        balcony_floors[int(rng.integers(len(balcony_floors)))] = True
    rail_h = rng.uniform(0.25, 0.4) * wh
    slab = max(1.0, rng.uniform(1.0, 2.0) * unit)

    def window(cx: float, wy0: float, wy1: float, balcony: bool) -> None:
        wx0, wx1 = cx - ww / 2, cx + ww / 2
        if fw:
            c.paint(MOLDING, wx0 - fw, wy0 - fw - lintel, wx1 + fw, wy1 + fw)
        c.paint(WINDOW, wx0, wy0, wx1, wy1)
        if blind_mode == "shutters" and rng.random() < blind_p:
            room = (cell_w - ww) / 2 - fw - 1.0
            sw = min(ww / 2, room)
            if sw >= 1.5:
                c.paint(BLIND, wx0 - fw - sw, wy0, wx0 - fw, wy1)
                c.paint(BLIND, wx1 + fw, wy0, wx1 + fw + sw, wy1)
        elif blind_mode == "blinds" and rng.random() < blind_p:
            c.paint(BLIND, wx0, wy0, wx1, wy0 + rng.uniform(0.2, 0.6) * (wy1 - wy0))
        if balcony:
            margin = rng.uniform(1.0, 3.0) * unit
            c.paint(BALCONY, wx0 - fw - margin, wy1 - rail_h, wx1 + fw + margin, wy1 + slab)
        else:
            c.paint(SILL, wx0 - sill_over - fw, wy1 + fw, wx1 + sill_over + fw, wy1 + fw + sill_h)

    centres = (edges[:-1] + edges[1:]) / 2
    for top, has_balcony in zip(tops[:-1], balcony_floors, strict=True):
        wy0, wy1 = top + wtop, top + wtop + wh
        full = has_balcony and rng.random() < 0.3
        for cx in centres:
            window(cx, wy0, wy1, has_balcony and not full)
        if full:
            pad = rng.uniform(1.0, 4.0) * unit
            c.paint(BALCONY, bx0 + pad, wy1 - rail_h, bx1 - pad, wy1 + slab)

    # Ground floor: a door, shop windows or ordinary windows, sometimes a string course above.
    ground_h = s - ground_top
    door_col = int(rng.integers(n_cols))
    has_shop = rng.random() < 0.8
    shops = [has_shop and j != door_col and rng.random() < 0.75 for j in range(n_cols)]
    if has_shop and not any(shops):
        shops[(door_col + 1) % n_cols] = True
    shop_top = ground_top + rng.uniform(0.12, 0.25) * ground_h
    base = rng.uniform(2.0, 4.0) * unit
    for j, cx in enumerate(centres):
        if j == door_col:
            dw = rng.uniform(0.45, 0.7) * cell_w
            dh = rng.uniform(0.65, 0.85) * ground_h
            if fw:
                c.paint(MOLDING, cx - dw / 2 - fw, s - dh - fw - lintel, cx + dw / 2 + fw, s)
            c.paint(DOOR, cx - dw / 2, s - dh, cx + dw / 2, s)
        elif shops[j]:
            c.paint(
                SHOP, edges[j] + 0.08 * cell_w, shop_top, edges[j + 1] - 0.08 * cell_w, s - base
            )
        else:
            gy0 = ground_top + rng.uniform(0.2, 0.3) * ground_h
            window(cx, gy0, gy0 + rng.uniform(0.4, 0.5) * ground_h, False)
    if rng.random() < 0.5:
        c.paint(CORNICE, bx0, ground_top - 1.5 * unit, bx1, ground_top + max(1.0, unit))
    return c


# --------------------------------------------------------------------------------------------
# Rendering: a (mostly) deterministic, local function of the layout
# --------------------------------------------------------------------------------------------

_BASE = np.array(
    [
        (0, 0, 0),  # background: sky gradient, computed
        (206, 182, 150),  # facade: sandstone plaster
        (48, 62, 82),  # window glass
        (88, 52, 32),  # door: dark wood
        (234, 222, 196),  # cornice: cream stone
        (136, 138, 146),  # sill: slate grey
        (120, 104, 90),  # balcony: shadowed wall between the bars
        (72, 108, 78),  # blind: green shutters (roller blinds are recoloured below)
        (178, 180, 188),  # pillar: cool grey stone
        (246, 244, 238),  # molding: white frame
        (178, 90, 62),  # roof: terracotta tiles
        (36, 46, 58),  # shop glass
    ],
    dtype=np.float32,
)


@dataclass
class _Geometry:
    """Per-pixel coordinates, absolute and relative to the rectangle that painted the pixel."""

    y: np.ndarray  # (H, W) absolute row / size, in [0, 1)
    px: np.ndarray  # (H, W) column offset inside the rectangle, int
    py: np.ndarray  # (H, W) row offset inside the rectangle, int
    rw: np.ndarray  # (H, W) rectangle width, int
    rh: np.ndarray  # (H, W) rectangle height, int
    u: np.ndarray  # (H, W) relative column in (0, 1)
    v: np.ndarray  # (H, W) relative row in (0, 1)
    unit: float  # pixels per pixel-at-128


def _geometry(c: _Canvas) -> _Geometry:
    rects = np.asarray(c.rects, dtype=np.int32)
    yy, xx = np.mgrid[0 : c.size, 0 : c.size].astype(np.int32)
    x0 = rects[c.rect_id, 0]
    y0 = rects[c.rect_id, 1]
    rw = rects[c.rect_id, 2] - x0
    rh = rects[c.rect_id, 3] - y0
    px, py = xx - x0, yy - y0
    return _Geometry(
        y=yy.astype(np.float32) / c.size,
        px=px,
        py=py,
        rw=rw,
        rh=rh,
        u=((px + 0.5) / rw).astype(np.float32),
        v=((py + 0.5) / rh).astype(np.float32),
        unit=c.size / 128.0,
    )


def _step(unit: float, at_128: float, minimum: int = 2) -> int:
    """A texture period in pixels, scaled with the image size."""
    return max(minimum, round(at_128 * unit))


def _shade(c: _Canvas, g: _Geometry) -> np.ndarray:
    """Return the unlit photo, (H, W, 3) float32 in 0..255, before the per-image tint."""
    lab = c.labels
    rgb = _BASE[lab].copy()
    mult = np.ones(lab.shape, dtype=np.float32)
    px, py, rw, rh, u, v = g.px, g.py, g.rw, g.rh, g.u, g.v
    thin = _step(g.unit, 1.0, 1)  # a one-pixel line at 128 px

    # Sky: lighter towards the horizon.
    sky = (
        np.array([118, 164, 214], np.float32) + np.array([82, 52, 18], np.float32) * g.y[..., None]
    )
    m = lab == BACKGROUND
    rgb[m] = sky[m]

    # Wall: stone courses, restarting at each storey's top, staggered joints, tiny block variation.
    k = _step(g.unit, 4.0, 3)
    row = py // k
    m = lab == FACADE
    joint = ((px + (row % 2) * k) % (2 * k)) == 0
    block = np.sin(row * 12.9898 + ((px + (row % 2) * k) // (2 * k)) * 78.233) * 0.5 + 0.5
    wall = np.where(py % k == k - 1, 0.84, np.where(joint, 0.9, 0.97 + 0.06 * block))
    mult[m] = wall[m]

    # Glass: sky reflected at the top, a diagonal glint, mullion and transom in frame colour.
    m = lab == WINDOW
    glass = rgb + (np.array([70, 80, 88], np.float32) * ((1 - v) ** 2)[..., None])
    glint = np.exp(-(((u - 0.2 - 0.5 * v) / 0.07) ** 2)) * (v < 0.65)
    glass += 60.0 * glint[..., None]
    bars = (rw >= 5) & (
        (np.abs(px - (rw - 1) / 2) < 0.5 * thin + 0.01) | (py == np.round(0.35 * rh))
    )
    glass[bars] = _BASE[MOLDING]
    rgb[m] = glass[m]

    # Door: double leaf with sunken panels and a brass knob.
    m = lab == DOOR
    inset = np.maximum(1, np.round(0.18 * rw))
    groove = ((px == inset) | (px == rw - 1 - inset)) & (v > 0.08) & (v < 0.92)
    groove |= (
        (np.abs(v - 0.08) < 0.5 / rh) | (np.abs(v - 0.5) < 0.5 / rh) | (np.abs(v - 0.92) < 0.5 / rh)
    )
    middle = px == rw // 2
    door = np.where(middle, 0.55, np.where(groove, 0.68, 1.0 + 0.05 * np.sin(px * 2.1)))
    mult[m] = door[m]
    knob = m & (np.abs(u - 0.4) < 0.08) & (np.abs(v - 0.55) < 0.03 + 0.5 / rh)
    rgb[knob] = (222, 190, 92)

    # Cornice: lit top edge, dentils in the lower half, dark shadow line under the overhang.
    m = lab == CORNICE
    dentil = (v > 0.5) & (px % _step(g.unit, 2.0) == 0)
    cornice = np.where(py == 0, 1.07, np.where(py >= rh - 1, 0.62, np.where(dentil, 0.8, 1.0)))
    mult[m] = cornice[m]

    m = lab == SILL
    mult[m] = np.where(py >= rh - 1, 0.78, 1.0)[m]

    # Balcony: iron bars and top rail in front of the shadowed wall, stone slab at the bottom.
    m = lab == BALCONY
    iron = (px % _step(g.unit, 2.5) == 0) | (py < thin)
    slab = py >= rh - thin
    bal = np.where(iron[..., None], np.float32([46, 46, 52]), rgb)
    bal = np.where(slab[..., None], np.float32([196, 190, 178]), bal)
    rgb[m] = bal[m]

    # Blinds: tall narrow ones are green shutters, others beige roller blinds; both slatted.
    m = lab == BLIND
    roller = rh < 1.5 * rw
    blind = np.where(roller[..., None], np.float32([204, 192, 160]), rgb)
    rgb[m] = blind[m]
    mult[m] = np.where(py % 2 == 1, 0.72, 1.0)[m]

    # Pillars: round shading across the width, shallow flutes.
    m = lab == PILLAR
    flute = (rw >= 4) & (px % 3 == 1)
    mult[m] = ((0.72 + 0.33 * np.sin(np.pi * u)) * np.where(flute, 0.92, 1.0))[m]

    # Frames: bevelled, lit from the top left.
    m = lab == MOLDING
    frame = np.where((py == 0) | (px == 0), 1.04, np.where((py == rh - 1) | (px == rw - 1), 0.8, 1))
    mult[m] = frame[m]

    # Roof: staggered tile rows from the roof's top edge, darker towards the ridge.
    m = lab == ROOF
    t = _step(g.unit, 3.0)
    trow = py // t
    tile_joint = ((px + (trow % 2) * t) % (2 * t)) == 0
    roof = np.where(py % t == t - 1, 0.62, np.where(tile_joint, 0.8, 1.0)) * (0.8 + 0.2 * v)
    mult[m] = roof[m]

    # Shop: a red sign with pale lettering over dark glass, framed, with mullions.
    m = lab == SHOP
    shop = rgb + (np.array([60, 64, 70], np.float32) * (1 - v)[..., None]) * 0.7
    sign = v < 0.18
    letters = sign & (v > 0.05) & (v < 0.13) & ((px // _step(g.unit, 2.0)) % 3 == 0)
    shop = np.where(sign[..., None], np.float32([150, 36, 36]), shop)
    shop = np.where(letters[..., None], np.float32([236, 220, 170]), shop)
    edge = (px < thin) | (px >= rw - thin) | (py >= rh - thin) | (np.abs(v - 0.18) < 0.5 / rh)
    mullion = np.abs(px - np.round(rw / 2)) < 0.5 * thin + 0.01
    shop = np.where((edge | (mullion & ~sign))[..., None], np.float32([62, 62, 66]), shop)
    rgb[m] = shop[m]

    rgb *= mult[..., None]

    # Cast shadows: sills, cornices, balconies and frames darken what lies just below them.
    caster = np.isin(lab, (CORNICE, SILL, BALCONY, MOLDING))
    receiver = np.isin(lab, (FACADE, PILLAR, WINDOW, BACKGROUND))
    depth = _step(g.unit, 2.0, 1)
    shadow = np.zeros(lab.shape, dtype=np.float32)
    for d in range(1, depth + 1):
        shadow[d:] += caster[:-d] * (1.0 - (d - 1) / depth)
    shadow = np.minimum(shadow, 1.0) * receiver
    rgb *= (1.0 - 0.32 * shadow)[..., None]
    # Daylight from above.
    rgb *= (1.06 - 0.12 * g.y)[..., None]
    return rgb


def render_facade(
    seed: int, index: int, size: int = 128, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic facade.

    Args:
        seed: Dataset seed.
        index: Image number within the split (1-based in file names, any int here).
        size: Side of the square images in pixels (>= 32).
        split: ``"train"``, ``"val"`` or ``"test"``; part of the sub-seed.

    Returns:
        ``(photo, labels)``: photo (size, size, 3) uint8 RGB, labels (size, size) uint8 class
        ids into [`FACADE_CLASSES`][p2pkit.data.synth.FACADE_CLASSES] (colour them with
        [`labels_to_rgb`][p2pkit.data.synth.labels_to_rgb]). The result depends only on
        ``(seed, split, index, size)``.
    """
    if size < 32:
        raise DataError(f"synthetic facades need size >= 32 pixels, got {size}")
    if split not in _SPLITS:
        raise DataError(f"unknown split {split!r}: use one of {', '.join(_SPLITS)}")
    rng = np.random.default_rng([seed, _SPLITS[split], index])
    canvas = _layout(rng, size)
    rgb = _shade(canvas, _geometry(canvas))
    # Per-image camera: global brightness and a slight colour cast, then faint sensor noise.
    brightness = rng.uniform(0.86, 1.12)
    tint = 1.0 + rng.uniform(-0.06, 0.06, size=3)
    rgb *= np.float32(brightness) * tint.astype(np.float32)
    rgb += rng.normal(0.0, 2.0, size=rgb.shape).astype(np.float32)
    photo = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return photo, canvas.labels


# --------------------------------------------------------------------------------------------
# Dataset writer
# --------------------------------------------------------------------------------------------

_README = """Synthetic facades (generated by p2pkit, not real photographs)

Made by p2pkit.data.synth.synthesize_facades(seed={seed}, size={size}) so that the pix2pix
example runs offline. Procedural facade label layouts (sky, wall, windows with frames, sills and
shutters, balconies, pillars, door, shop windows, cornice, roof) and pseudo-photos rendered from
them.

Layout as in the pix2pix "facades" dataset: every PNG in train/ ({n_train} files) and val/
({n_val} files) is one {size}x{width} image, the photo (A) on the left and the colour-coded label
map (B) on the right. Labels -> photo is direction BtoA. classes.json lists the classes and their
RGB colours in the label maps. Regenerating with the same settings gives identical files.
"""


def _settings(n_train: int, n_val: int, size: int, seed: int) -> dict[str, object]:
    return {
        "generator": "p2pkit.data.synth.synthesize_facades",
        "version": 1,
        "seed": seed,
        "size": size,
        "n_train": n_train,
        "n_val": n_val,
    }


def synthesize_facades(
    out_dir: str | os.PathLike[str],
    *,
    n_train: int = 400,
    n_val: int = 50,
    size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write the synthetic facades dataset (see the module docstring for the layout).

    Args:
        out_dir: Folder to write; created if missing. It must be empty or a folder this
            function wrote before (its ``classes.json`` says so), whose images are replaced.
        n_train: Number of training pairs (``train/1.png`` ...).
        n_val: Number of validation pairs (``val/1.png`` ...).
        size: Side of each half in pixels; files are ``size`` x ``2 * size`` RGB PNGs.
        seed: Dataset seed; image ``i`` of a split depends only on ``(seed, split, i, size)``.
        progress: Show a progress bar.

    Returns:
        ``out_dir`` as a `Path`. If it already holds exactly this dataset
        (same settings, all files present), it is returned without regenerating.

    Raises:
        DataError: if ``out_dir`` holds something else, or the sizes are invalid.
    """
    if n_train < 1 or n_val < 0:
        raise DataError(f"n_train must be >= 1 and n_val >= 0, got {n_train} and {n_val}")
    out = Path(out_dir).expanduser()
    meta_path = out / "classes.json"
    settings = _settings(n_train, n_val, size, seed)
    if out.exists():
        if not out.is_dir():
            raise DataError(f"{out} is a file; give a folder for the synthetic dataset")
        previous = None
        if meta_path.is_file():
            try:
                previous = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                previous = None
        ours = isinstance(previous, dict) and previous.get("generator") == settings["generator"]
        if not ours and any(out.iterdir()):
            raise DataError(
                f"{out} is not empty and was not written by synthesize_facades; "
                "choose an empty or new folder"
            )
        if ours and all(previous.get(key) == value for key, value in settings.items()):  # type: ignore[union-attr]
            counts = {"train": n_train, "val": n_val}
            if all(len(list((out / sp).glob("*.png"))) == n for sp, n in counts.items()):
                return out
        # Our own older output with other settings: drop its images so no stale file survives.
        for split in ("train", "val"):
            for old in (out / split).glob("*.png") if (out / split).is_dir() else ():
                old.unlink()
        meta_path.unlink(missing_ok=True)

    jobs = [("train", i) for i in range(1, n_train + 1)] + [("val", i) for i in range(1, n_val + 1)]
    for split in ("train", "val"):
        (out / split).mkdir(parents=True, exist_ok=True)
    for split, index in track(
        jobs, description="synthesizing facades", disable=not progress, transient=True
    ):
        photo, labels = render_facade(seed, index, size, split)
        pair = np.concatenate([photo, labels_to_rgb(labels)], axis=1)
        # compress_level=1: still lossless, several times faster to write than the default.
        Image.fromarray(pair).save(out / split / f"{index}.png", compress_level=1)

    meta = {
        **settings,
        "layout": "aligned A|B: A = photo (left half), B = label map (right half)",
        "direction": "BtoA",
        "classes": [
            {"id": i, "name": name, "rgb": [int(x) for x in FACADE_PALETTE[i]]}
            for i, name in enumerate(FACADE_CLASSES)
        ],
    }
    (out / "README.txt").write_text(
        _README.format(seed=seed, size=size, width=2 * size, n_train=n_train, n_val=n_val),
        encoding="utf-8",
    )
    # Written last: its presence (with these settings) marks a complete dataset.
    meta_path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
