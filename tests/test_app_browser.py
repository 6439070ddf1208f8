"""The demo page in a real headless browser (Playwright driving Debian's Chromium; run `make browser` first).

Loads the page, checks what is visible before a run (no placeholder table, readable help that names
only visible controls, limits as W×H), picks an example, runs it, waits for the before/after sliders
and the results table, checks labels and number formats, and saves screenshots to test-artifacts/
(demo_initial.png before the run, demo.png after it).
"""
from __future__ import annotations

import re
import shutil

import pytest

from conftest import REPO

ARTIFACTS = REPO / 'test-artifacts'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
SR_NAMES = ('SRResNet Baseline', 'SRResNet DHP-60', 'SRResNet DHP-40', 'SRResNet DHP-20')
# the luminance of the help text's colour (0 black .. 1 white): readable on the light page
LUMINANCE_JS = '''e => { const m = getComputedStyle(e).color.match(/[\\d.]+/g).map(Number);
                         return (0.2126 * m[0] + 0.7152 * m[1] + 0.0722 * m[2]) / 255; }'''


def _chromium() -> str:
    path = shutil.which('chromium') or shutil.which('chromium-browser')
    if not path:
        pytest.fail('Chromium is not installed: run `make browser` (installs Debian\'s chromium) '
                    'before the browser test')
    return path


def _check_initial_page(page, expect):
    expect(page.get_by_text('Differentiable Meta Pruning', exact=False).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text('gray images only', exact=False).first).to_be_visible()
    intro = page.locator('#intro').inner_text()
    assert re.search(r'capped at \d+×\d+', intro) and 'px' not in intro, intro   # limits as W×H, not "4096 px"
    expect(page.locator('#results-table')).to_be_hidden()                       # no placeholder headers "1 2 3"
    assert not page.get_by_text(re.compile(r'^\s*1\s+2\s+3\s*$')).count()
    help_ = page.locator('#mode-help')
    expect(help_).to_be_visible()
    text = help_.inner_text()
    assert 'Simulate' in text and 'seed' not in text, text                      # the seed field is hidden for SR
    assert help_.evaluate(LUMINANCE_JS) < 0.45, 'the mode help text is too faint'
    # no empty panels before a run: no slider is shown until it has a result
    assert page.get_by_text(': input ↔ output').count() == 0 or not any(
        e.is_visible() for e in page.get_by_text(': input ↔ output').all())
    seed = page.get_by_label('Noise seed', exact=False)
    page.get_by_role('radio', name='Denoising', exact=False).check()
    expect(seed).to_be_visible()                                                 # denoising, simulate: noise added
    page.get_by_role('radio', name='Restore this image', exact=False).check()
    expect(seed).to_be_hidden()                                                  # restore mode adds no noise
    page.get_by_role('radio', name='Simulate', exact=False).check()
    page.get_by_role('radio', name='Super-resolution', exact=False).check()
    expect(seed).to_be_hidden()


def _check_results(page, expect):
    table = page.locator('#results-table')
    for name in SR_NAMES:
        expect(table).to_contain_text(name, timeout=30_000)
    expect(table).to_contain_text('Bicubic ×4 (no network)')
    rows = table.locator('[role="row"]').evaluate_all(
        'rs => rs.map(r => [...r.querySelectorAll("[role=gridcell]")].map(c => c.textContent.trim()))')
    by_name = {r[0]: r for r in rows if r}
    # every column fits: the last header cell ends inside the table's frame (no horizontal scrolling)
    assert table.evaluate('e => [...e.querySelectorAll("[role=columnheader]")].every('
                          'h => h.getBoundingClientRect().right <= e.getBoundingClientRect().right + 1)'), \
        'the results table is wider than the page'
    for name in SR_NAMES:
        _, gflops, ratio, params, ms, mb, psnr, ssim = by_name[name]
        # fixed decimals per column, thousands separators
        assert re.fullmatch(r'\d+\.\d\d', gflops) and re.fullmatch(r'\d+\.\d', ratio), by_name[name]
        assert re.fullmatch(r'\d{1,3}(,\d{3})*', params) and int(params.replace(',', '')) > 0, by_name[name]
        # the median with its quartiles over the interleaved rounds
        assert re.fullmatch(r'[\d,]+\.\d \([\d,]+\.\d–[\d,]+\.\d\)', ms) and re.fullmatch(r'[\d,]+\.\d|—', mb), \
            by_name[name]
        assert re.fullmatch(r'\d+\.\d\d', psnr) and re.fullmatch(r'-?\d\.\d{4}', ssim), by_name[name]
        label = page.get_by_text(f'{name}: input ↔ output', exact=True)
        expect(label).to_be_visible()
        assert label.evaluate('e => e.scrollWidth <= e.clientWidth + 1'), f'label of {name} is cut off'
    note = page.locator('#measurement-note').inner_text()
    assert 'median of' in note and 'peak' in note.lower() and re.match(r'Measured on (CPU, |GPU: )', note), note
    assert 'Control: the first model timed again' in note, note


def test_page_runs_an_example_and_shows_results(demo_app):
    url, _, _ = demo_app
    exe = _chromium()
    from playwright.sync_api import expect, sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / 'demo.png'
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.goto(url, wait_until='networkidle', timeout=60_000)
            _check_initial_page(page, expect)
            page.screenshot(path=str(ARTIFACTS / 'demo_initial.png'), full_page=True)

            # the first example: astronaut, super-resolution, simulate
            example = page.get_by_role('row').filter(has_text='Super-resolution').filter(has_text='Simulate').first
            expect(example).to_be_visible(timeout=30_000)
            example.click()
            # the example's image lands in the input component (a second <img> of the same file)
            page.wait_for_function(
                '() => [...document.querySelectorAll("img")].filter(i => /astronaut_hr/.test(i.src)).length >= 2',
                timeout=30_000)
            page.get_by_role('button', name='Run all models').click()

            status = page.locator('#status')
            expect(status).to_contain_text(re.compile('Done|⚠️'), timeout=120_000)
            assert 'Done' in status.inner_text(), status.inner_text()
            # each slider shows two loaded images
            slider_imgs = page.locator('img[src*="/file="], img[src*="gradio_api/file"]')
            expect(slider_imgs.nth(7)).to_be_visible(timeout=30_000)
            page.wait_for_function(
                '() => [...document.querySelectorAll("img")].filter(i => i.complete && i.naturalWidth > 0 '
                '&& /file/.test(i.src)).length >= 8', timeout=30_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(shot), full_page=True)
            _check_results(page, expect)
        finally:
            browser.close()
    assert shot.exists() and shot.stat().st_size > 10_000
