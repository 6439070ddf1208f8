"""Gradio demo: DHP-pruned SRResNet (x4 super-resolution) and DnCNN (σ=70 denoising) side by side.

    python app.py [--host 127.0.0.1] [--port 7860] [--weights-dir weights]

Loads weights/srresnet_x4_{baseline,dhp60,dhp40,dhp20}.safetensors and
weights/dncnn_s70_{...}.safetensors once at start-up (whatever exists; it
exits with an error if none does), then serves one page: pick a task and an
image, and every loaded model of that task restores it; the page shows a
before/after slider per model and one table with GFLOPs, parameters, the
runtime measured on this request's image (forward pass only, all models
timed side by side in --repeats rounds after a warm-up, with a control and
each runtime's spread), peak memory, PSNR/SSIM when a reference exists, and
the device.

Only layout and glue live here; the logic is in restore_dhp/demo.py.

Request time with the full-size architectures (random weights; widths giving
100/59/40/20% of the FLOPs; 4 models; 1 output/warm-up + 3 timed + 1 memory
forward each) on this 2-core CPU while other jobs loaded it (load average 3-4):
SR 64x64 input 13 s, 96x96 41 s, 128x128 47 s; denoising 160x160 24 s,
192x192 23 s, 256x256 33 s.  Idle, a full SRResNet forward at 128x128 takes
about 2.2 s and DnCNN at 256x256 about 1.7 s.  Hence the default caps on the
CPU (SR network input <= 64x64 px, i.e. 256x256 simulated HR uploads;
denoising <= 160x160 px); on a GPU they are SR 256x256 and denoising
1024x1024 (restore_dhp.demo.DEFAULT_MAX_PIXELS).  Set them with
--max-sr-pixels / --max-denoise-pixels.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
from gradio.utils import get_upload_folder  # noqa: E402

import restore_dhp  # noqa: E402,F401  (installs the torchvision alias BasicSR needs)
from restore_dhp import demo as D  # noqa: E402

MODE_CHOICES = [('Simulate: degrade, restore, score', 'simulate'), ('Restore this image as it is', 'restore')]
MODE_HELP = {
    'sr': ('**Simulate** downscales the upload ×4 (MATLAB bicubic, after cropping it to a multiple of 4), lets '
           'every model restore it and scores each output against the upload. **Restore** upscales the upload '
           'itself ×4 (no score).'),
    'denoise': ('**Simulate** converts the upload to gray, adds σ=70 Gaussian noise drawn with the noise seed '
                'below, lets every model remove it and scores each output against the clean image. **Restore** '
                'treats the upload as already noisy (no score).'),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--host', default='127.0.0.1', help='interface to listen on (default: loopback only)')
    p.add_argument('--port', type=int, default=7860)
    p.add_argument('--weights-dir', default='weights', help='folder with the *.safetensors checkpoints')
    p.add_argument('--device', default=None, help='torch device (default: cuda if available, else cpu)')
    p.add_argument('--repeats', type=int, default=D.DEFAULT_REPEATS, help='timed runs per model and request')
    p.add_argument('--max-sr-pixels', type=int, default=None,
                   help='largest SR network input in LR pixels (default: 64×64 on a CPU, 256×256 on a GPU); '
                        'bigger uploads are downscaled')
    p.add_argument('--max-denoise-pixels', type=int, default=None,
                   help='largest denoising input in pixels (default: 160×160 on a CPU, 1024×1024 on a GPU); '
                        'bigger uploads are downscaled')
    p.add_argument('--examples-dir', default=os.path.join(tempfile.gettempdir(), 'restore_dhp_demo_examples'))
    args = p.parse_args(argv)
    if args.repeats < 1 or any(v is not None and v < 64 for v in (args.max_sr_pixels, args.max_denoise_pixels)):
        p.error('--repeats must be >= 1 and the pixel caps >= 64')
    return args


def pixel_limits(reg: D.Registry, args) -> dict[str, int]:
    limits = D.default_max_pixels(reg.device)
    for key, value in (('sr', args.max_sr_pixels), ('denoise', args.max_denoise_pixels)):
        if value is not None:
            limits[key] = value
    return limits


def seed_shown(task: str, mode: str) -> bool:
    """The noise seed matters only where noise is added: a noise task in simulate mode."""
    return task in D.TASKS and D.TASKS[task].uses_noise and mode == 'simulate'


def intro_markdown(reg: D.Registry, limits: dict[str, int], repeats: int) -> str:
    sr, dn = D.pixel_limit_text(limits['sr']), D.pixel_limit_text(limits['denoise'])
    sr_hr = D.pixel_limit_text(D.TASKS['sr'].upload_pixels(limits['sr'], simulate=True))
    return ('# DHP: Differentiable Meta Pruning via HyperNetworks, for image restoration\n'
            'Compare the unpruned baseline with DHP-pruned networks (DHP-60, DHP-40, DHP-20) that keep about '
            '60%, 40% and 20% of its FLOPs. **Super-resolution ×4** uses SRResNet on RGB images; **denoising σ=70** uses DnCNN on '
            '**gray** images (colour uploads are converted to gray). Runtimes are measured on this server '
            f'({reg.device.type.upper()}) for the forward pass only, all models side by side with a control (median '
            f'of {repeats} rounds after a warm-up, the spread in brackets). '
            f'Larger inputs are downscaled first: the SR network input is capped at {sr} '
            f'(simulated SR uploads at {sr_hr}), the denoising input at {dn}.')


def request_handler(reg: D.Registry, args, limits: dict[str, int], slots: list):
    """The Run button's function: status line, results table, measurement note, one slider pair per slot (shown
    only where there is a result: no empty panels)."""
    def run_models(task_v, mode_v, image_v, seed_v):
        # raw (un-preprocessed) inputs: the image arrives as a file-data dict, decoded by us; only a file
        # that Gradio stored in its upload cache is read (never a path an API caller names)
        empty = [gr.update(visible=False, value=None)] * len(slots)
        try:
            path = D.uploaded_file(image_v, get_upload_folder())
            res = D.process_request(reg, task_v, mode_v, path, seed_v, repeats=args.repeats, max_pixels=limits)
        except D.InputError as e:
            gr.Warning(str(e))
            return [f'⚠️ {e}', gr.update(visible=False, value=None), '', *empty]
        except Exception as e:  # noqa: BLE001  keep the server up and say what went wrong in one line
            msg = f'Processing failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'
            print(msg, file=sys.stderr)
            gr.Warning(msg)
            return [f'⚠️ {msg}', gr.update(visible=False, value=None), '', *empty]
        by_variant = {r.variant: r.output for r in res.results}
        pairs = [gr.update(visible=True, value=(res.before, by_variant[m.variant]))
                 if t == res.task.key and m.variant in by_variant else gr.update(visible=False, value=None)
                 for t, m in slots]
        df = pd.DataFrame(res.table_rows, columns=res.table_columns)
        return [f'**{res.status_line()}**', gr.update(visible=True, value=df), res.measurement_note, *pairs]
    return run_models


def build(reg: D.Registry, args) -> gr.Blocks:
    shown = reg.tasks()
    limits = pixel_limits(reg, args)
    examples = D.write_examples(args.examples_dir)
    slots = [(t, m) for t in D.TASKS for m in reg.models[t]]  # one slider per loaded model, both tasks

    with gr.Blocks(title='DHP pruning for image restoration') as demo:
        gr.Markdown(intro_markdown(reg, limits, args.repeats), elem_id='intro')
        gr.Markdown(reg.markdown(), elem_id='models-info')
        with gr.Row():
            with gr.Column(scale=1):
                task = gr.Radio([(D.TASKS[t].entry.title, t) for t in shown], value=shown[0], label='Task')
                mode = gr.Radio(MODE_CHOICES, value='simulate', label='Mode')
                mode_help = gr.Markdown(MODE_HELP[shown[0]], elem_id='mode-help')
                seed = gr.Number(value=0, precision=0, minimum=0, label='Noise seed (σ=70, fixed for reproducibility)',
                                 visible=seed_shown(shown[0], 'simulate'))
                run = gr.Button('Run all models', variant='primary')
            with gr.Column(scale=1):
                image = gr.Image(type='filepath', label='Input image (upload or pick an example)',
                                 sources=['upload', 'clipboard'], height=300)
            with gr.Column(scale=2):
                ex_rows = [[str(examples[name]), t, mode] for t in shown for name, mode in D.EXAMPLES[t]]
                gr.Examples(ex_rows, inputs=[image, task, mode], label='Examples (scikit-image photos)')
        status = gr.Markdown('Choose an image and press **Run all models**.', elem_id='status', label='status')
        # hidden until there are results: an empty table would show placeholder headers
        table = gr.Dataframe(label='Results (runtime and memory measured on this request\'s image)',
                             interactive=False, elem_id='results-table', visible=False, wrap=True)
        note = gr.Markdown('', elem_id='measurement-note')
        groups, sliders = {}, []
        for t in D.TASKS:
            task_slots = [m for tt, m in slots if tt == t]
            with gr.Column(visible=(t == shown[0])) as grp:
                for i in range(0, len(task_slots), 2):  # two per row: full labels, outputs large enough to compare
                    with gr.Row():
                        for m in task_slots[i:i + 2]:
                            sliders.append(gr.ImageSlider(label=f'{m.name}: input ↔ output', format='png',
                                                          type='numpy', height=480, visible=False))
            groups[t] = grp

        def on_task(t, m):
            t = t if t in D.TASKS else shown[0]
            return [gr.update(visible=seed_shown(t, m)), MODE_HELP[t]] + [gr.update(visible=(k == t))
                                                                          for k in D.TASKS]

        task.change(on_task, [task, mode], [seed, mode_help, *groups.values()], api_name=False, queue=False)
        mode.change(lambda t, m: gr.update(visible=seed_shown(t, m)), [task, mode], seed, api_name=False,
                    queue=False)

        run_models = request_handler(reg, args, limits, slots)
        run.click(run_models, [task, mode, image, seed], [status, table, note, *sliders], api_name='restore',
                  preprocess=False, concurrency_limit=1, concurrency_id='models')
    return demo


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        reg = D.load_registry(args.weights_dir, args.device)
    except D.NoWeightsError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    for line in reg.summary_lines():
        print(line, file=sys.stderr if ('missing' in line or 'unusable' in line) else sys.stdout)
    demo = build(reg, args)
    demo.queue(max_size=32, default_concurrency_limit=1)
    demo.launch(server_name=args.host, server_port=args.port, allowed_paths=[args.examples_dir],
                ssr_mode=False, show_error=False, footer_links=['api'])
    return 0


if __name__ == '__main__':
    sys.exit(main())
