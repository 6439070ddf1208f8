"""Speed tables that survive noise: control row, per-round spread, settling rounds."""
import pytest

import restore_dhp  # noqa: F401
from nets import compact
from restore_dhp.speed_tables import CONTROL_LABEL, control_line, settled, spread, with_control
from restore_dhp.speedup import Entry
from restore_dhp.speedup import main as speedup_main
from restore_dhp.timing import paired_ratios, quartiles


def test_spread_is_the_iqr_of_per_round_ratios():
    runs = {'base': [10.0, 20.0, 10.0, 10.0, 10.0], 'model': [5.0, 10.0, 5.0, 4.0, 6.0]}
    assert paired_ratios(runs['base'], runs['model']) == [2.0, 2.0, 2.0, 2.5, 10 / 6]
    q1, q3 = spread(runs, 'base', 'model')
    assert q1 == pytest.approx(2.0) and q3 == pytest.approx(2.0)
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)
    assert quartiles([3.0]) == (3.0, 3.0, 3.0)
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])


def test_control_is_flagged_beyond_the_tolerance():
    assert control_line(1.03).startswith('control') and 'within 5%' in control_line(1.03)
    assert control_line(1.09).startswith('!! CONTROL OFF') and '1.09' in control_line(1.09)
    assert control_line(0.94).startswith('!! CONTROL OFF')
    runs = {'b': [10.0, 10.0, 10.0], 'c': [10.2, 10.1, 9.9], 'd': [11.0, 11.0, 11.0]}
    assert settled(runs, ['b'], ['c']) and not settled(runs, ['b'], ['d'])


def test_control_entry_is_a_separate_copy_of_the_baseline():
    base = Entry('Baseline', compact('dncnn', num_layers=3, num_feat=4), {'feat00': 4, 'feat01': 4}, True, 'denoise')
    other = Entry('DHP-50', compact('dncnn', {'feat00': 2}, num_layers=3, num_feat=4), {'feat00': 2}, task='denoise')
    entries = with_control([base, other])
    control = entries[-1]
    assert control.label == CONTROL_LABEL and control.is_control and not control.is_baseline
    assert control.model is not base.model and control.widths == base.widths


def test_speedup_tables_show_spread_and_control(capsys):
    assert speedup_main(['--uniform-widths', '16', '--arch', 'dncnn', '--sizes', '16', '--repeats', '3',
                         '--warmup', '0', '--backends', 'fused', '--settle', '6']) == 0
    text = capsys.readouterr().out
    assert 'IQR' in text and CONTROL_LABEL in text
    verdicts = [line for line in text.splitlines() if 'the baseline timed again) reads' in line]
    assert len(verdicts) == 1
    rounds = int(text.split('median of ')[1].split()[0])
    assert rounds in (3, 6)  # settled after the first block, or one more block
