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
    """Let BasicSR's train/test pipelines run without CUDA (two functions it hard-wires to CUDA).

    * ``basicsr.utils.dist_util.init_dist`` (as imported by ``basicsr.utils.options``)
      calls ``torch.cuda.set_device`` and defaults to NCCL; without CUDA we
      initialise the process group with gloo from torchrun's environment.
    * ``basicsr.train.load_resume_state`` maps the resume state onto
      ``torch.cuda.current_device()``; without CUDA it is loaded on the CPU.

    Both replacements defer to BasicSR's own function whenever CUDA is
    available, so GPU behaviour is untouched.  (DDP wrapping with CUDA device
    ids is handled in :class:`restore_dhp.models.restoration_model.RestorationModel`.)
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
    original_load_resume_state = bsr_train.load_resume_state

    def init_dist(launcher, backend='nccl', **kwargs):
        if torch.cuda.is_available():
            return original_init_dist(launcher, backend, **kwargs)
        if launcher != 'pytorch':
            raise ValueError(f'launcher {launcher!r} needs CUDA; use --launcher pytorch (torchrun) on CPU')
        dist.init_process_group(backend='gloo', **kwargs)

    def load_resume_state(opt):
        if torch.cuda.is_available():
            return original_load_resume_state(opt)
        path = None
        if opt['auto_resume']:
            state_dir = osp.join('experiments', opt['name'], 'training_states')
            if osp.isdir(state_dir):
                states = [int(f[:-len('.state')]) for f in os.listdir(state_dir) if f.endswith('.state')]
                if states:
                    path = osp.join(state_dir, f'{max(states)}.state')
                    opt['path']['resume_state'] = path
        elif opt['path'].get('resume_state'):
            path = opt['path']['resume_state']
        if path is None:
            return None
        state = torch.load(path, map_location='cpu', weights_only=False)
        bsr_train.check_resume(opt, state['iter'])
        return state

    bsr_options.init_dist = init_dist
    bsr_train.load_resume_state = load_resume_state
    bsr_options._restore_dhp_patched = True
