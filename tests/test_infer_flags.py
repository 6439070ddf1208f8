"""infer's Real-ESRGAN-style flags: -i/-o, --suffix, --ext, --outscale, --backend/--precision, --device cuda:N, progress."""
import numpy as np
import pytest
import torch
from PIL import Image

from restore_dhp.archs.srresnet_arch import SRResNetCompact
from restore_dhp.checkpoint import save_compact
from restore_dhp.data.imageio import write_png
from restore_dhp.infer import main as infer_main
from restore_dhp.run_model import tile_count


@pytest.fixture()
def sr_weights(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'sr.safetensors'
    save_compact(SRResNetCompact(num_blocks=1, num_feat=8).eval(), path)
    return str(path)


def test_suffix_ext_outscale_and_short_flags(tmp_path, sr_weights):
    src = tmp_path / 'in'
    write_png(src / 'a.png', np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    out = tmp_path / 'out'
    assert infer_main(['-w', sr_weights, '-i', str(src), '-o', str(out), '--suffix', 'x2', '--ext', 'jpg',
                       '-s', '2', '--device', 'cpu', '--backend', 'eager', '--precision', 'fp32', '--quiet']) == 0
    with Image.open(out / 'a_x2.jpg') as im:
        assert im.format == 'JPEG' and im.size == (48, 40)
    assert infer_main(['-w', sr_weights, '-i', str(src / 'a.png'), '-o', str(src), '--suffix', 'sr', '--ext', 'webp',
                       '--quiet']) == 0  # beside the input: the suffix keeps it apart
    with Image.open(src / 'a_sr.webp') as im:
        assert im.format == 'WEBP' and im.size == (96, 80)


def test_16_bit_result_to_jpeg_is_reduced_to_8_bits_with_a_notice(tmp_path, sr_weights, capsys):
    write_png(tmp_path / 'deep.png', np.random.default_rng(1).integers(0, 65536, (8, 8, 3), dtype=np.uint16))
    assert infer_main(['-w', sr_weights, '-i', str(tmp_path / 'deep.png'), '-o', str(tmp_path / 'o'), '--ext', 'jpg',
                       '--quiet']) == 0
    assert '16-bit image restored at 16-bit precision; written as 8-bit JPG' in capsys.readouterr().err
    with Image.open(tmp_path / 'o' / 'deep.jpg') as im:
        assert im.mode == 'RGB' and im.size == (32, 32)


def test_progress_per_tile_for_a_large_image(tmp_path, sr_weights, capsys):
    write_png(tmp_path / 'big.png', np.random.default_rng(2).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    assert tile_count(20, 24, 8) == 9 and tile_count(20, 24, None) == 1
    assert infer_main(['-w', sr_weights, '-i', str(tmp_path / 'big.png'), '-o', str(tmp_path / 'o'), '--tile', '8',
                       '--overlap', '2']) == 0
    err = capsys.readouterr().err
    assert '0/9 [' in err and 'tile/s' in err and '1/1 [' in err and 'img' in err  # bars shown while running


def test_device_forms(tmp_path, sr_weights, capsys):
    write_png(tmp_path / 'a.png', np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(SystemExit):
        infer_main(['-w', sr_weights, '-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'), '--device', 'gpu'])
    assert 'cuda:N' in capsys.readouterr().err
    if torch.cuda.is_available():
        pytest.skip('the refusal below is for a machine without that CUDA device')
    assert infer_main(['-w', sr_weights, '-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'),
                       '--device', 'cuda:1']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('error: device cuda:1') and not (tmp_path / 'o').exists()


def test_outscale_out_of_range_is_refused(tmp_path, sr_weights, capsys):
    assert infer_main(['-w', sr_weights, '-i', str(tmp_path), '-o', str(tmp_path / 'o'), '-s', '0']) == 2
    assert '--outscale' in capsys.readouterr().err
