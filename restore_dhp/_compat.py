"""Small, documented fixes that let BasicSR 1.4.2 run on current torchvision.

BasicSR 1.4.2 (the latest release on PyPI) imports
``torchvision.transforms.functional_tensor``, a private module that
torchvision 0.17 renamed to ``torchvision.transforms._functional_tensor``; the
old name was removed in 0.19.  Importing BasicSR then fails.  We register the
old name as an alias of the new module *before* BasicSR is first imported (the
function is called at the top of :mod:`restore_dhp`).  Nothing of BasicSR is
copied or patched on disk; when a BasicSR release fixes the import, the alias
is simply unused.
"""
from __future__ import annotations

import importlib
import os
import sys

_OLD = 'torchvision.transforms.functional_tensor'
_NEW = 'torchvision.transforms._functional_tensor'


def install_torchvision_alias() -> bool:
    """Make ``torchvision.transforms.functional_tensor`` importable. Returns True if an alias was added."""
    if _OLD in sys.modules:
        return False
    try:
        importlib.import_module(_OLD)
        return False
    except ImportError:
        pass
    sys.modules[_OLD] = importlib.import_module(_NEW)
    return True


def _load_state(path: str) -> dict:
    import torch
    location = f'cuda:{torch.cuda.current_device()}' if torch.cuda.is_available() else 'cpu'
    return torch.load(path, map_location=location, weights_only=False)


def _newest_loadable_state(opt: dict) -> dict | None:
    """For ``--auto_resume``: the newest ``.state`` that loads and whose network file exists (sets its path)."""
    state_dir = os.path.join('experiments', opt['name'], 'training_states')
    models_dir = os.path.join('experiments', opt['name'], 'models')
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

    bsr_options.init_dist = init_dist
    bsr_train.load_resume_state = _load_resume_state
    bsr_options._restore_dhp_patched = True
