"""The training recipes: which option file, with which ``--force_yml`` overlay, trains each run.

    python -m tools.recipes show srresnet_x4_dhp40_gpu   # the train command of that run
    python -m tools.recipes args srresnet_x4_dhp40_gpu   # -opt FILE [--force_yml ENTRY ...], one a line (for scripts)
    python -m tools.recipes list                         # every recipe of the catalogue's models, with its file
    python -m tools.recipes next gpu dncnn_s70_dhp40     # the stages after it in the shipped chain (its bnfreeze_gpu)

``options/train/`` holds one file per family of runs; the runs of a family differ in a key or two, set with
BasicSR's ``--force_yml`` (``restore_dhp.options`` checks the overrides as it checks the file). A run is named
``<prefix>_<variant>[_<stage>[_<tag>]]``:

* prefix: a network's in ``restore_dhp.catalogue`` (``srresnet_x4``, ``dncnn_s70``, ``edsr_x4``);
* variant: ``baseline``; ``dhpNN``, searched to NN% of the full width's FLOPs; ``cpuNN`` / ``gpuNN``, to NN% of
  its latency on a table measured on that device;
* stage: none (the paper's setting), ``cpu`` or ``gpu`` (a one-stage budget), ``continue_gpu`` or
  ``bnfreeze_gpu`` (a later stage, from the variant's checkpoint);
* tag (after a stage): the same recipe run again under an experiment name of its own
  (``srresnet_x4_dhp40_cpu_device``).

The file is ``<run>.yml`` where one exists (``srresnet_x4_dhp100_gpu.yml``), else its family's, and the overlay
sets ``name=<run>`` and:

========================  =====================================  =====================================================
run                       file                                   overlay
========================  =====================================  =====================================================
``dhpNN``                 ``<prefix>_dhp[_<stage>].yml``         ``dhp:target_ratio=NN/100``; NN=100 also
                                                                 ``ratio_tolerance=0`` and ``min_search_iter`` = the
                                                                 file's ``max_search_iter`` (the full width trained
                                                                 with the search's procedure)
``cpuNN``, ``gpuNN``      ``<prefix>_latency_<stage>.yml``       ``dhp:target:latency=NN/100``
a later stage             ``<prefix>_<stage>.yml``               ``path:pretrain_network_g``: the file's, with the
                                                                 file's own variant replaced by the run's
========================  =====================================  =====================================================
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from restore_dhp.catalogue import TASKS, entries
from restore_dhp.force_yml import apply_force_yml

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = ROOT / 'options' / 'train'
LATER_STAGES = ('continue_gpu', 'bnfreeze_gpu')   # from a checkpoint of the same variant
BUDGETS = ('cpu', 'gpu')
#: the stages of each task's shipped weights, in order, each from the previous one's result (their metadata records
#: the same chain under ``parent``); a CPU budget is one stage, and a continuation is followed by what follows it here
SHIPPED_STAGES = {'sr': ('gpu', 'continue_gpu', 'bnfreeze_gpu'), 'denoise': ('gpu', 'bnfreeze_gpu')}
RUN = re.compile(rf"(?P<prefix>{'|'.join(re.escape(e.prefix) for t in TASKS.values() for e in entries(t))})"
                 r'_(?P<variant>baseline|(?:dhp|cpu|gpu)\d+)'
                 rf"(?:_(?P<stage>{'|'.join(LATER_STAGES + BUDGETS)})(?:_(?P<tag>\w+))?)?$")


class RecipeError(KeyError):
    """A run name that is not a recipe's, or a recipe whose file is missing; the message is one line."""

    def __str__(self) -> str:
        return str(self.args[0])


def load_yaml(path: Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


@dataclass(frozen=True)
class Recipe:
    run: str                   # the experiment name
    model: str                 # <prefix>_<variant>: the model this run trains (weights/<model>.safetensors)
    file: Path
    force: tuple[str, ...]     # the --force_yml overlay (name=<run> first, where the file's name differs)

    @property
    def path(self) -> str:
        """The option file, relative to the checkout where it lies in it."""
        return str(self.file.relative_to(ROOT)) if self.file.is_relative_to(ROOT) else str(self.file)

    def args(self) -> list[str]:
        """``restore_dhp.train``'s arguments for this run."""
        return ['-opt', self.path, *(['--force_yml', *self.force] if self.force else [])]

    def options(self) -> dict:
        """The options this run trains with: the file with the overlay applied."""
        return apply_force_yml(load_yaml(self.file), list(self.force))

    def overlay(self) -> list[str]:
        """The overlay without the experiment name."""
        return [f for f in self.force if not f.startswith('name=')]

    def __str__(self) -> str:
        """'`options/train/X.yml`', with '--force_yml ...' where the run has an overlay (the name not counted)."""
        extra = self.overlay()
        return f'`{self.path}`' + (f" with `--force_yml {' '.join(extra)}`" if extra else '')


def parse(run: str) -> re.Match:
    m = RUN.match(run)
    if not m:
        raise RecipeError(f'{run}: not a run name (<prefix>_<variant>[_<stage>[_<tag>]], e.g. srresnet_x4_dhp40_gpu)')
    return m


def recipe_model(run: str) -> str:
    """The model a run trains, ``<prefix>_<variant>`` (``srresnet_x4_dhp60`` for ``srresnet_x4_dhp60_continue_gpu``):
    its weights are ``weights/<model>.safetensors``."""
    m = parse(run)
    return f"{m['prefix']}_{m['variant']}"


def _existing(file: Path, run: str) -> Path:
    if not file.is_file():
        raise RecipeError(f'{run}: no option file {file}')
    return file


def _family(folder: Path, run: str) -> tuple[Path, list[str]]:
    """The family's file of ``run`` and the overlay that makes ``run`` of it (the name left out)."""
    m = parse(run)
    prefix, variant, stage = m['prefix'], m['variant'], m['stage']
    if stage in LATER_STAGES:   # the file's checkpoint paths name its own variant: the run's instead
        file = _existing(folder / f'{prefix}_{stage}.yml', run)
        own = load_yaml(file)
        mine = parse(own['name'])
        pretrain = own['path']['pretrain_network_g'].replace(f"{prefix}_{mine['variant']}", f'{prefix}_{variant}')
        return file, [f'path:pretrain_network_g={pretrain}']
    if variant == 'baseline':   # a baseline has a file of its own, or no recipe at that stage
        raise RecipeError(f'{run}: no option file {folder / (run + ".yml")}')
    target = int(variant[3:]) / 100
    suffix = f'_{stage}' if stage else ''
    if variant.startswith('dhp'):
        file = _existing(folder / f'{prefix}_dhp{suffix}.yml', run)
        force = [f'dhp:target_ratio={target}']
        if target == 1.0:   # the full width trained with the search's procedure: it searches to the end
            force += ['dhp:ratio_tolerance=0.0', f"dhp:min_search_iter={load_yaml(file)['dhp']['max_search_iter']}"]
        return file, force
    if variant.startswith(('cpu', 'gpu')) and stage:
        return _existing(folder / f'{prefix}_latency{suffix}.yml', run), [f'dhp:target:latency={target}']
    raise RecipeError(f'{run}: no recipe family for it')


def recipe(run: str, folder: Path = OPTIONS) -> Recipe:
    """The recipe of ``run`` among the option files in ``folder`` (see the module docstring)."""
    m = parse(run)
    model = recipe_model(run)
    own = folder / f"{model}{'_' + m['stage'] if m['stage'] else ''}.yml"
    file, overlay = (own, []) if own.is_file() else _family(folder, run)
    written = load_yaml(file)
    name = [] if written.get('name') == run else [f'name={run}']
    # an entry that leaves the file as it is (DHP-60 of a family written at 0.6) is left out
    overlay = [entry for entry in overlay if apply_force_yml(written, [entry]) != written]
    return Recipe(run, model, file, tuple(name + overlay))


def of_checkpoint(info: dict, folder: Path = OPTIONS) -> Recipe:
    """The recipe that trained a checkpoint's run (``info``: its metadata's ``info`` or a ``parent`` in it): its
    experiment name, else the option file it names (a run under a name of its own)."""
    try:
        return recipe(info['experiment'], folder)
    except RecipeError:
        return recipe(Path(info['option_file']).stem, folder)


def catalogue_runs() -> list[str]:
    """Every recipe of the catalogue's models: the paper's setting and each budget and stage that has a file."""
    runs = []
    for entry in (e for t in TASKS.values() for e in entries(t)):
        for variant in entry.variants:
            for stage in ('', *BUDGETS, *LATER_STAGES):
                run = entry.run_name(variant) + (f'_{stage}' if stage else '')
                try:
                    recipe(run)
                except RecipeError:
                    continue
                runs.append(run)
    return runs


def shipped_stages(model: str) -> tuple[str, ...]:
    """The stages that trained ``model``'s shipped weights, in order: its task's :data:`SHIPPED_STAGES` for the
    task's main network; the catalogue's further networks (EDSR) ship from their CPU recipe alone."""
    prefix = parse(model)['prefix']
    main = {spec.entry.prefix: task for task, spec in TASKS.items()}
    return SHIPPED_STAGES[main[prefix]] if prefix in main else ('cpu',)


def following(stage: str, model: str) -> list[str]:
    """The recipes that follow ``model``'s ``stage`` in its task's shipped chain, up to the next continuation (a budget
    of its own in tools/train_weights.sh): ``dncnn_s70_dhp40_bnfreeze_gpu`` after ``gpu``; none for a stage the
    chain does not hold."""
    chain = shipped_stages(model)
    later = chain[chain.index(stage) + 1:] if stage in chain else ()
    if 'continue_gpu' in later:
        later = later[:later.index('continue_gpu')]
    return [f'{recipe_model(model)}_{s}' for s in later]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m tools.recipes', description=__doc__.split('\n\n')[0])
    p.add_argument('what', choices=('show', 'args', 'list', 'next'))
    p.add_argument('runs', nargs='*', help='run names (show; args takes one; next: the stage, then models)')
    p.add_argument('--folder', type=Path, default=OPTIONS, help='where the option files are (default options/train)')
    args = p.parse_args(argv)
    if args.what == 'args' and len(args.runs) != 1:
        p.error('args takes one run name')
    if args.what == 'next':   # the stages that follow STAGE for each model (recipes.following)
        stage, *models = args.runs or ['']
        try:
            print('\n'.join(run for m in models for run in following(stage, m)))
        except RecipeError as e:
            print(f'error: {e}', file=sys.stderr)
            return 2
        return 0
    try:
        recipes = [recipe(run, args.folder) for run in (args.runs if args.what != 'list' else catalogue_runs())]
    except RecipeError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    for r in recipes:
        if args.what == 'args':
            print('\n'.join(r.args()))
        elif args.what == 'show':
            print(' '.join(['python -m restore_dhp.train', *r.args()]))
        else:
            print(f'{r.run}: {r}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
