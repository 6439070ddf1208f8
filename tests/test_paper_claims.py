"""The recipe-stability table of reports/paper_claims.md (research/paper_claims/stability.py), from checkpoints."""
from research.paper_claims.stability import table
from restore_dhp import network
from restore_dhp.checkpoint import save_compact


def _run(root, name, precise, running):
    models = root / name / 'models'
    models.mkdir(parents=True)
    validation = []
    for it, p, r in zip((400, 800, 1200), precise, running):
        validation += [[it, 'Set5_running', {'psnr': r}], [it, 'Set5', {'psnr': p}]]
    net = network.build('dncnn', dict(num_layers=3, num_feat=4))
    save_compact(net, models / 'net_g_latest.safetensors', info={'validation': validation})


def test_the_table_flags_a_fall_and_a_seed_pair_apart(tmp_path):
    _run(tmp_path, 'pbn_dhp40_s10', (25.0, 27.0, 28.0), (24.0, 26.5, 28.1))
    _run(tmp_path, 'pbn_dhp40_s11', (25.5, 26.0, 28.1), (25.0, 26.0, 28.0))
    _run(tmp_path, 'pbn_dhp20_s10', (26.0, 24.5, 27.0), (26.0, 24.0, 27.0))
    _run(tmp_path, 'pbn_dhp20_s11', (26.0, 27.0, 27.5), (26.0, 27.0, 27.5))
    _run(tmp_path, 'pbn_baseline_s10', (27.0, 28.0, 29.0), (27.0, 28.0, 29.0))
    text = table(['pbn_dhp40_s10', 'pbn_dhp40_s11', 'pbn_dhp20_s10', 'pbn_dhp20_s11', 'pbn_baseline_s10'], tmp_path)
    assert '| pbn_dhp40_s10 | 25.00 (24.00) 27.00 (26.50) 28.00 (28.10) | 28.00 | 0.00 |' in text
    assert '| pbn_dhp20_s10 | 26.00 (26.00) 24.50 (24.00) 27.00 (27.00) | 27.00 | 1.50 !! |' in text
    assert '| pbn_dhp40 | 2 | 28.00 / 28.10 | 0.10 | yes |' in text
    assert '| pbn_dhp20 | 2 | 27.00 / 27.50 | 0.50 | NO |' in text
    assert '| pbn_baseline | 1 | 29.00 | – | one seed so far |' in text
