"""One picture made into what training reads: decoded, converted to RGB (grayscale, palette
and RGBA alike), its shorter side resized to the image size and centre-cropped to a square,
as uint8 3 x S x S. Done once per image, when the data set is first read."""

import numpy as np
import torch
from PIL import Image


def fit(picture: Image.Image, size: int) -> torch.Tensor:
    """`picture` as uint8 3 x `size` x `size`: shorter side resized to `size` (bilinear, with
    antialiasing), the centre cropped."""
    picture.draft("RGB", (size, size))  # JPEG: decoded at the smallest scale still >= size
    picture = picture.convert("RGB")
    width, height = picture.size
    scale = size / min(width, height)
    resized = picture.resize((max(size, round(width * scale)), max(size, round(height * scale))),
                             Image.BILINEAR)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    square = resized.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(square).copy()).permute(2, 0, 1).contiguous()


def from_item(item, size: int) -> torch.Tensor:
    """A data set's image (a PIL image, or a uint8 C x H x W tensor with 1 or 3 channels) as
    uint8 3 x `size` x `size`."""
    if isinstance(item, Image.Image):
        return fit(item, size)
    if isinstance(item, torch.Tensor) and item.dtype == torch.uint8 and item.dim() == 3 \
            and item.shape[0] in (1, 3):
        return fit(Image.fromarray(item.expand(3, -1, -1).permute(1, 2, 0).numpy()), size)
    raise TypeError(f"an image is a PIL image or a uint8 C x H x W tensor (C 1 or 3), not "
                    f"{type(item).__name__}"
                    f"{f' {item.dtype} {tuple(item.shape)}' if isinstance(item, torch.Tensor) else ''}")
