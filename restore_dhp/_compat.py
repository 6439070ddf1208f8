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
    """
    import os
    import os.path as osp

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

    def _load(path):
        location = f'cuda:{torch.cuda.current_device()}' if torch.cuda.is_available() else 'cpu'
        return torch.load(path, map_location=location, weights_only=False)

    def load_resume_state(opt):
        state = None
        if opt['auto_resume']:
            state_dir = osp.join('experiments', opt['name'], 'training_states')
            models_dir = osp.join('experiments', opt['name'], 'models')
            found = sorted((int(f[:-6]) for f in os.listdir(state_dir) if f[:-6].isdigit() and f.endswith('.state'))
                           if osp.isdir(state_dir) else [], reverse=True)
            for iteration in found:
                path = osp.join(state_dir, f'{iteration}.state')
                if not osp.exists(osp.join(models_dir, f'net_g_{iteration}.pth')):
                    continue
                try:
                    state = _load(path)
                except Exception as e:  # a state cut short by a kill before atomic saving
                    print(f'skipping unreadable resume state {path}: {e}', flush=True)
                    continue
                opt['path']['resume_state'] = path
                break
        elif opt['path'].get('resume_state'):
            state = _load(opt['path']['resume_state'])
        if state is not None:
            bsr_train.check_resume(opt, state['iter'])
        return state

    bsr_options.init_dist = init_dist
    bsr_train.load_resume_state = load_resume_state
    bsr_options._restore_dhp_patched = True
