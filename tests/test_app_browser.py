"""The demo page in a real headless browser (Playwright driving Debian's Chromium; run `make browser` first).

Loads the page, picks an example, runs it, waits for the before/after sliders
and the results table, saves test-artifacts/demo.png and checks the visible text.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO

ARTIFACTS = REPO / 'test-artifacts'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']


def _chromium() -> str:
    path = shutil.which('chromium') or shutil.which('chromium-browser')
    if not path:
        pytest.fail('Chromium is not installed: run `make browser` (installs Debian\'s chromium) '
                    'before the browser test')
    return path


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
            expect(page.get_by_text('Differentiable Meta Pruning', exact=False).first).to_be_visible(timeout=30_000)
            expect(page.get_by_text('gray images only', exact=False).first).to_be_visible()

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
            table = page.locator('#results-table')
            for name in ('SRResNet baseline (unpruned)', 'SRResNet DHP 60%', 'SRResNet DHP 40%', 'SRResNet DHP 20%'):
                expect(table).to_contain_text(name, timeout=30_000)
            expect(table).to_contain_text('Bicubic ×4 (no network)')
            expect(table).to_contain_text('CPU, ')
            # each slider shows two loaded images
            slider_imgs = page.locator('img[src*="/file="], img[src*="gradio_api/file"]')
            expect(slider_imgs.nth(7)).to_be_visible(timeout=30_000)
            page.wait_for_function(
                '() => [...document.querySelectorAll("img")].filter(i => i.complete && i.naturalWidth > 0 '
                '&& /file/.test(i.src)).length >= 8', timeout=30_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(shot), full_page=True)

            text = table.inner_text()
            numbers = [float(x) for x in re.findall(r'(?<![\w.])\d+\.\d+(?![\w.])', text)]
            assert len(numbers) >= 4 * 5, text       # GFLOPs, FLOPs %, runtime, memory/PSNR, SSIM per model
            for name in ('SRResNet baseline (unpruned)', 'SRResNet DHP 60%', 'SRResNet DHP 40%', 'SRResNet DHP 20%'):
                assert name in text
                expect(page.get_by_text(f'{name}: input ↔ output', exact=True)).to_be_visible()
        finally:
            browser.close()
    assert shot.exists() and shot.stat().st_size > 10_000
