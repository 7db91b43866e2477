"""rastlit.image: PNG files through Pillow (save_image / load_image: row 0 of a tensor is the
bottom row of the file, atomic writes, clear errors) and image_grid."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from rastlit.image import image_grid, load_image, save_image

Image = pytest.importorskip("PIL.Image")


@pytest.mark.parametrize("c", [1, 2, 3, 4])
def test_save_load_roundtrip_and_orientation(tmp_path, c):
    img = torch.randint(0, 256, (6, 9, c)).float() / 255
    img[0] = 1.0  # row 0 (the bottom) white
    img[-1] = 0.0  # the top row black
    save_image(img, tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as im:
        assert im.format == "PNG" and im.size == (9, 6)
        raw = np.asarray(im).reshape(6, 9, c)
    assert (raw[-1] == 255).all() and (raw[0] == 0).all(), "row 0 of the tensor is the bottom of the file"
    back = load_image(tmp_path / "a.png")
    assert back.shape == (6, 9, c) and back.dtype == torch.float32 and back.is_contiguous()
    torch.testing.assert_close(back, img, atol=1e-6, rtol=0)
    assert os.listdir(tmp_path) == ["a.png"]  # no temporary file left behind


def test_save_image_quantizes_clamps_and_tiles(tmp_path):
    img = torch.tensor([[[-0.5], [0.2], [0.5 / 255 + 1e-4], [1.7]]])  # [1,4,1]
    save_image(img, str(tmp_path / "q.png"))
    assert load_image(str(tmp_path / "q.png")).flatten().mul(255).round().tolist() == [0, 51, 1, 255]
    batch = torch.rand(3, 4, 5, 3)
    save_image(batch, tmp_path / "grid.png")
    torch.testing.assert_close(load_image(tmp_path / "grid.png"), image_grid(batch), atol=0.5 / 255 + 1e-6, rtol=0)


def test_save_image_errors_and_atomicity(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="NaN or Inf"):
        save_image(torch.full((2, 2, 3), float("nan")), tmp_path / "n.png")
    with pytest.raises(ValueError, match=r"C in 1\.\.4"):
        save_image(torch.zeros(2, 2, 5), tmp_path / "c.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_image(torch.zeros(2, 2, 3), tmp_path / "no" / "such" / "dir.png")
    assert os.listdir(tmp_path) == []
    # a failure in the middle of writing leaves the previous file whole and no temporary file
    save_image(torch.zeros(3, 3, 3), tmp_path / "keep.png")
    before = (tmp_path / "keep.png").read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(torch.ones(3, 3, 3), tmp_path / "keep.png")
    assert (tmp_path / "keep.png").read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.png"]


def test_load_image_modes(tmp_path):
    g16 = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    t = load_image(tmp_path / "g16.png")
    np.testing.assert_allclose(t[..., 0].numpy(), g16[::-1] / 65535.0, atol=1e-6)
    bw = Image.new("1", (2, 2))
    bw.putpixel((1, 0), 1)  # top right white
    bw.save(tmp_path / "bw.png")
    assert load_image(tmp_path / "bw.png")[..., 0].tolist() == [[0.0, 0.0], [0.0, 1.0]]
    Image.new("RGB", (3, 2), (10, 20, 30)).save(tmp_path / "j.jpg", quality=100)
    t = load_image(tmp_path / "j.jpg")
    assert t.shape == (2, 3, 3)
    torch.testing.assert_close(t[0, 0], torch.tensor([10.0, 20, 30]) / 255, atol=3 / 255, rtol=0)
    Image.new("CMYK", (2, 2), (0, 255, 255, 0)).save(tmp_path / "cmyk.tif")  # pure red
    assert load_image(tmp_path / "cmyk.tif").shape == (2, 2, 3)


def test_load_image_errors_name_the_path(tmp_path):
    save_image(torch.rand(20, 20, 4), tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-40])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    for name in ("cut.png", "empty.png", "text.png"):
        with pytest.raises(ValueError, match=rf"could not read image file '.*{name}'"):
            load_image(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        load_image(tmp_path / "nothing.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(FileNotFoundError, match="dir.png"):
        load_image(tmp_path / "dir.png")
