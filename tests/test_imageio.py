"""The one image decoder (restore_dhp.data.imageio.decode_image) and its policy, shared by infer, benchmark and demo."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

import restore_dhp  # noqa: F401
from restore_dhp import demo
from restore_dhp.data.imageio import (NOTICE_ALPHA, NOTICE_FIRST_FRAME, ImageReadError, decode_image, read_header,
                                      read_image)
from restore_dhp.data.pixels import NOTICE_16BIT_TO_8BIT, to_uint8


def png_header_only(width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but whose pixel data is a few bytes: only a
    decoder that reads the header first can say how large it is without decoding (or failing)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    ihdr = struct.pack('>IIBBBBB', width, height, bit_depth, colour_type, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b'')


def _rgba(path, dtype=np.uint8):
    peak = np.iinfo(dtype).max
    bgra = np.zeros((4, 6, 4), dtype)
    bgra[..., 2] = peak            # red
    bgra[0, :, 3] = peak           # opaque row
    bgra[1, :, 3] = 0              # transparent row: white
    bgra[2:, :, 3] = peak // 2 + 1  # about half: pink
    assert cv2.imwrite(str(path), bgra)
    return path


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_transparency_is_composited_on_white(tmp_path, dtype):
    peak = np.iinfo(dtype).max
    d = decode_image(_rgba(tmp_path / 'a.png', dtype))
    assert d.notices == [NOTICE_ALPHA] and d.pixels.dtype == dtype and d.pixels.shape == (4, 6, 3)
    assert (d.pixels[0] == [peak, 0, 0]).all() and (d.pixels[1] == peak).all()
    assert d.pixels[2, 0, 0] == peak and abs(int(d.pixels[2, 0, 1]) - peak // 2) <= 1


def test_gray_alpha_palette_and_gray(tmp_path):
    la = np.stack([np.full((3, 5), 10, np.uint8), np.zeros((3, 5), np.uint8)], axis=2)
    Image.fromarray(la, 'LA').save(tmp_path / 'la.png')
    d = decode_image(tmp_path / 'la.png')
    assert d.pixels.shape == (3, 5) and (d.pixels == 255).all() and d.notices == [NOTICE_ALPHA]

    rgb = np.zeros((3, 5, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE).save(tmp_path / 'p.png')
    d = decode_image(tmp_path / 'p.png')
    assert d.pixels.shape == (3, 5, 3) and (d.pixels == [0, 200, 0]).all() and d.notices == []

    pal = Image.fromarray(rgb).convert('P', palette=Image.Palette.ADAPTIVE)
    pal.save(tmp_path / 'pt.png', transparency=int(np.asarray(pal)[0, 0]))
    d = decode_image(tmp_path / 'pt.png')
    assert (d.pixels == 255).all() and d.notices == [NOTICE_ALPHA]

    g16 = np.arange(15, dtype=np.uint16).reshape(3, 5) * 4000
    assert cv2.imwrite(str(tmp_path / 'g16.png'), g16)
    d = decode_image(tmp_path / 'g16.png')
    assert d.pixels.dtype == np.uint16 and np.array_equal(d.pixels, g16)


def test_16bit_kept_then_reduced_with_the_notice(tmp_path):
    rgb16 = np.random.default_rng(0).integers(0, 65536, (5, 7, 3)).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / 'c16.png'), rgb16[:, :, ::-1])
    d = decode_image(tmp_path / 'c16.png')
    assert d.pixels.dtype == np.uint16 and np.array_equal(d.pixels, rgb16)
    notices = []
    u8 = to_uint8(d.pixels, notices)
    assert notices == [NOTICE_16BIT_TO_8BIT] and np.array_equal(u8, np.round(rgb16 / 257.0).astype(np.uint8))
    assert np.array_equal(read_image(tmp_path / 'c16.png'), u8)


def test_animation_gives_first_frame_with_notice(tmp_path):
    frames = [Image.fromarray(np.full((6, 6, 3), v, np.uint8)) for v in (30, 220)]
    frames[0].save(tmp_path / 'anim.gif', save_all=True, append_images=frames[1:])
    d = decode_image(tmp_path / 'anim.gif')
    assert NOTICE_FIRST_FRAME in d.notices and abs(int(d.pixels.mean()) - 30) <= 2


def test_size_is_read_from_the_header_and_refused_before_decoding(tmp_path):
    path = tmp_path / 'bomb.png'
    path.write_bytes(png_header_only(9990, 9990, bit_depth=16, colour_type=2))
    h = read_header(path.read_bytes())
    assert (h.width, h.height, h.channels, h.bytes_per_sample) == (9990, 9990, 3, 2)
    assert h.decoded_bytes == 9990 * 9990 * 6
    with pytest.raises(ImageReadError, match=r'9990×9990 .* 571 MB to decode; the limit here is 256 MB'):
        decode_image(path, max_bytes=256 * 2**20)
    with pytest.raises(ImageReadError, match='not a readable image'):  # its pixel data is not there
        decode_image(path)


@pytest.mark.parametrize('content', [b'', b'not an image'])
def test_unreadable_files_get_one_line(tmp_path, content):
    path = tmp_path / 'x.png'
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as e:
        decode_image(path)
    assert str(path) in str(e.value) and '\n' not in str(e.value)


def test_every_entry_sees_the_same_pixels(tmp_path):
    """The demo, the benchmark/dataset reader and infer decode an RGBA file identically (same notice)."""
    path = _rgba(tmp_path / 'a.png')
    demo_pixels, demo_notices = demo.decode_upload(path)
    decoded = decode_image(path)
    assert np.array_equal(demo_pixels, decoded.pixels) and np.array_equal(read_image(path), decoded.pixels)
    assert demo_notices == ['Transparency composited on white.']


def test_the_reader_for_datasets_and_benchmarks_logs_the_same_notices(tmp_path, caplog):
    path = _rgba(tmp_path / 'a.png', np.uint16)
    with caplog.at_level('INFO', logger='restore_dhp.data.imageio'):
        read_image(path)
    assert f'{path}: {NOTICE_ALPHA}' in caplog.text and f'{path}: {NOTICE_16BIT_TO_8BIT}' in caplog.text


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
def test_write_png_round_trips_and_leaves_the_array_unchanged(tmp_path, dtype):
    from restore_dhp.data.imageio import write_png
    rgb = np.random.default_rng(1).integers(0, np.iinfo(dtype).max, (9, 11, 3)).astype(dtype)
    before = rgb.copy()
    write_png(tmp_path / 'sub' / 'o.png', rgb)
    assert np.array_equal(rgb, before)                          # swapped for the write, then back
    assert np.array_equal(decode_image(tmp_path / 'sub' / 'o.png').pixels, rgb)
    write_png(tmp_path / 'v.png', rgb[:, ::2])                  # a view: written through a copy
    assert np.array_equal(decode_image(tmp_path / 'v.png').pixels, rgb[:, ::2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sub', 'v.png']  # no temporary file left


def _with_orientation(im: Image.Image, path, orientation: int, **kw):
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, exif=exif.tobytes(), **kw)
    return path


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_is_applied_as_a_viewer_does(tmp_path, orientation):
    from PIL import ImageOps
    rgb = np.random.default_rng(orientation).integers(0, 256, (5, 8, 3), dtype=np.uint8)
    path = _with_orientation(Image.fromarray(rgb), tmp_path / 'o.png', orientation)   # PNG eXIf: lossless
    d = decode_image(path)
    with Image.open(path) as im:
        shown = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(d.pixels, shown)
    assert d.notices == ([] if orientation == 1 else
                         [f'EXIF orientation {orientation} applied (rotated/mirrored as the camera recorded)'])


def test_exif_orientation_6_jpeg_is_upright(tmp_path):
    """The phone-photo case: stored landscape, orientation 6 (rotate 90° clockwise to show)."""
    img = np.zeros((40, 64, 3), np.uint8)
    img[:, :8] = 255                                   # a white band on the stored left edge
    path = _with_orientation(Image.fromarray(img), tmp_path / 'phone.jpg', 6, quality=95)
    d = decode_image(path)
    assert d.pixels.shape == (64, 40, 3)               # shown portrait
    assert d.pixels[:8].mean() > 200 and d.pixels[-8:].mean() < 50   # the band is now on top
    assert any('EXIF orientation 6 applied' in n for n in d.notices)
