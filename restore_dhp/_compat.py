"""Small, documented fixes that let BasicSR 1.4.2 run on current torchvision, and start quickly.

BasicSR 1.4.2 (the latest release on PyPI) imports
``torchvision.transforms.functional_tensor``, a private module that
torchvision 0.17 renamed to ``torchvision.transforms._functional_tensor``; the
old name was removed in 0.19.  Importing BasicSR then fails.  We let the old
name resolve to the new module: :func:`install_torchvision_alias` adds an
import finder (called at the top of :mod:`restore_dhp`) that answers only
that one name, only when torchvision itself lacks it, and only when something
imports it, so nothing of torchvision is loaded in advance.  Nothing of
BasicSR is copied or patched on disk; when a BasicSR release fixes the import,
the finder is simply never asked.

BasicSR's package ``__init__`` imports all of BasicSR (every architecture,
torchvision's model zoo, losses, models): seconds before a command can print
its ``--help``.  Our architectures and datasets need only its registries, and
the image code its MATLAB-style ``imresize``, two files that import nothing of
BasicSR.  :func:`basicsr_module` loads such a file under its own name without
running the package ``__init__``; a later full ``import basicsr`` (training,
BasicSR's test pipeline) finds the same module object in ``sys.modules``, so
what was registered stays registered.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

_OLD = 'torchvision.transforms.functional_tensor'
_NEW = 'torchvision.transforms._functional_tensor'
#: BasicSR files that import nothing of BasicSR, so they load without its package ``__init__``
BASICSR_LEAVES = ('basicsr.utils.registry', 'basicsr.utils.matlab_functions')


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves :data:`_OLD` to :data:`_NEW` when the real finders (asked first) do not find it."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname == _OLD else None

    def create_module(self, spec):
        return importlib.import_module(_NEW)

    def exec_module(self, module):
        pass


def install_torchvision_alias() -> bool:
    """Make ``torchvision.transforms.functional_tensor`` importable (on first use). True if the finder was added."""
    if any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        return False
    sys.meta_path.append(_AliasFinder())  # last: torchvision's own module wins where it still exists
    return True


def basicsr_module(name: str) -> ModuleType:
    """A module of :data:`BASICSR_LEAVES`, loaded without BasicSR's package ``__init__`` if that has not run."""
    if name not in BASICSR_LEAVES:
        raise ValueError(f'{name} is not one of the BasicSR files that load on their own: {BASICSR_LEAVES}')
    if name in sys.modules or 'basicsr' in sys.modules:
        return importlib.import_module(name)
    spec = importlib.util.find_spec('basicsr')
    if spec is None or spec.origin is None:
        raise ImportError('BasicSR is not installed: pip install --no-deps basicsr==1.4.2 (see README)')
    file = Path(spec.origin).parent.joinpath(*name.split('.')[1:]).with_suffix('.py')
    leaf = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(leaf)
    sys.modules[name] = module
    try:
        leaf.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def register_on_lookup(register) -> None:
    """Make BasicSR's registries call ``register()`` (once) when asked for a name they do not hold.

    Importing restore_dhp stays cheap (registering the BasicSR models imports all of BasicSR), while
    ``import restore_dhp`` followed by BasicSR's ``build_network``/``build_dataset``/``build_model``
    finds our architectures, datasets and models as a BasicSR extension's import would register them.
    """
    registry = basicsr_module('basicsr.utils.registry').Registry
    if getattr(registry.get, '_restore_dhp', False):
        return
    original, pending = registry.get, [True]

    def get(self, name, *args, **kwargs):
        if pending and name not in self._obj_map:
            pending.clear()  # once, and not again from inside register()
            register()
        return original(self, name, *args, **kwargs)

    get._restore_dhp = True
    registry.get = get


def _load_state(path: str) -> dict:
    import torch
    location = f'cuda:{torch.cuda.current_device()}' if torch.cuda.is_available() else 'cpu'
    return torch.load(path, map_location=location, weights_only=False)


def _newest_loadable_state(opt: dict) -> dict | None:
    """For ``--auto_resume``: the newest ``.state`` that loads and whose network file exists (sets its path)."""
    state_dir = os.path.join('experiments', opt['name'], 'training_states')
    models_dir = os.path.join('experiments', opt['name'], 'models')
    from restore_dhp.fileio import remove_write_debris  # a save cut short by a kill leaves its temporary
    for folder in (state_dir, models_dir):
        remove_write_debris(folder)
    found = sorted((int(f[:-6]) for f in os.listdir(state_dir) if f[:-6].isdigit() and f.endswith('.state'))
                   if os.path.isdir(state_dir) else [], reverse=True)
    for iteration in found:
        path = os.path.join(state_dir, f'{iteration}.state')
        if not os.path.exists(os.path.join(models_dir, f'net_g_{iteration}.pth')):
            continue
        try:
            state = _load_state(path)
        except Exception as e:  # a state cut short by a kill before atomic saving
            print(f'skipping unreadable resume state {path}: {e}', flush=True)
            continue
        opt['path']['resume_state'] = path
        return state
    return None


def _load_resume_state(opt: dict) -> dict | None:
    """Replacement for ``basicsr.train.load_resume_state`` (see :func:`install_basicsr_cpu_fixes`)."""
    from basicsr import train as bsr_train  # BasicSR only after install_torchvision_alias has run
    if opt['auto_resume']:
        state = _newest_loadable_state(opt)
    else:
        state = _load_state(opt['path']['resume_state']) if opt['path'].get('resume_state') else None
    if state is not None:
        bsr_train.check_resume(opt, state['iter'])
    return state


def _seeded_once_final(parse_options):
    """BasicSR's ``parse_options`` that seeds again from the final options (after ``--force_yml``)."""
    from basicsr.utils import set_random_seed

    def seeded(root_path, is_train=True):
        opt, args = parse_options(root_path, is_train)
        set_random_seed(opt['manual_seed'] + opt['rank'])
        return opt, args
    return seeded


def install_basicsr_cpu_fixes() -> None:
    """Let BasicSR's train/test pipelines run without CUDA and resume safely after a kill.

    * ``basicsr.utils.dist_util.init_dist`` (as imported by ``basicsr.utils.options``)
      calls ``torch.cuda.set_device`` and defaults to NCCL; without CUDA we
      initialise the process group with gloo from torchrun's environment (with
      CUDA, BasicSR's own function runs).
    * ``basicsr.train.load_resume_state`` maps the state onto
      ``torch.cuda.current_device()`` and takes the newest ``.state`` file even
      if a kill cut it short.  Ours loads onto the CPU without CUDA and, for
      ``--auto_resume``, takes the newest state that loads and whose network
      file exists.  (Our models also write both atomically: see
      :class:`restore_dhp.models.restoration_model.RestorationModel`.)

    * ``basicsr.utils.MessageLogger`` (as imported by ``basicsr.train``) estimates the time left as
      ``(total_iter - iter - 1)`` iterations, so the last log line of a run read ``eta: -1 day, 23:59:..``;
      ours never counts below zero iterations.

    * ``basicsr.utils.options.parse_options`` (as imported by ``basicsr.train``) seeds the random generators
      from ``manual_seed`` *before* it applies ``--force_yml``: ``--force_yml manual_seed=11`` was logged as 11
      and trained with the file's seed (two "seeds" gave identical networks).  Ours seeds again once the
      options are final (the same state when the seed was not forced: nothing draws in between).

    DDP wrapping without CUDA device ids is handled in ``RestorationModel`` too.
    BasicSR and torch are imported here, not at the top: this module must run before BasicSR's first import.
    """
    import torch
    import torch.distributed as dist
    from basicsr import train as bsr_train
    from basicsr.utils import options as bsr_options

    if getattr(bsr_options, '_restore_dhp_patched', False):
        return
    original_init_dist = bsr_options.init_dist

    def init_dist(launcher, backend='nccl', **kwargs):
        if torch.cuda.is_available():
            return original_init_dist(launcher, backend, **kwargs)
        if launcher != 'pytorch':
            raise ValueError(f'launcher {launcher!r} needs CUDA; use --launcher pytorch (torchrun) on CPU')
        dist.init_process_group(backend='gloo', **kwargs)

    class MessageLogger(bsr_train.MessageLogger):
        def __call__(self, log_vars):
            total = self.max_iters
            self.max_iters = max(total, log_vars['iter'] + 1)  # ETA 0 on the last iteration, not -1 iteration
            try:
                super().__call__(log_vars)
            finally:
                self.max_iters = total

    bsr_options.init_dist = init_dist
    bsr_train.parse_options = _seeded_once_final(bsr_train.parse_options)
    bsr_train.load_resume_state = _load_resume_state
    bsr_train.MessageLogger = MessageLogger
    bsr_options._restore_dhp_patched = True


def install_safetensors_loading() -> None:
    """Let BasicSR's own models (``model_type: SRModel``, ...) load compact ``.safetensors`` checkpoints.

    BasicSR's ``BaseModel.load_network`` reads with ``torch.load(path, map_location=<a function>)``, which
    current torch refuses for safetensors files ("Loading safetensors file with callable map_location is
    not supported").  The replacement reads a ``.safetensors`` path with the project's checked loader
    and hands every other path to BasicSR's own.  Installed when :mod:`restore_dhp.models` is imported.
    BasicSR's ``SRModel`` builds ``network_g`` from the option file, at full width, so it loads a full-width
    file only; ``RestorationModel`` takes the widths from the file (a mismatch says so).
    """
    from basicsr.models.base_model import BaseModel
    from basicsr.utils import get_root_logger

    if getattr(BaseModel.load_network, '_restore_dhp', False):
        return
    original = BaseModel.load_network

    def load_network(self, net, load_path, strict=True, param_key='params'):
        if not str(load_path).endswith('.safetensors'):
            return original(self, net, load_path, strict, param_key)
        from .checkpoint import CheckpointError, load_state_checked, read_tensors
        try:
            load_state_checked(self.get_bare_model(net), read_tensors(load_path), load_path)
        except CheckpointError as e:
            raise CheckpointError(f'{e}; BasicSR\'s {type(self).__name__} builds network_g at full width: for a '
                                  'pruned file use model_type: RestorationModel, which reads its widths from the file'
                                  ) from None
        get_root_logger().info(f'Loaded compact checkpoint {load_path}')

    load_network._restore_dhp = True
    BaseModel.load_network = load_network
