"""BasicSR's SRModel, made CPU/gloo-safe and writing shippable safetensors checkpoints.

Used by the baseline and fine-tuning option files (``model_type: RestorationModel``)
and as the base of the DHP search model.  Differences from ``SRModel``:

* DistributedDataParallel is created without CUDA device ids on CPU
  (``torchrun`` + gloo), BasicSR passes ``torch.cuda.current_device()``;
* networks and training states are written atomically (temporary file, then
  rename), so a kill during a save never leaves a truncated file to resume from;
* validation runs the bare network, not the DDP wrapper: BasicSR validates on
  rank 0 only, and a wrapped forward there would wait for the other ranks;
* every save also writes the plain network as a self-describing compact
  checkpoint ``models/net_g_<iter>.safetensors`` (``..._latest``), the format the
  benchmark, inference and the demo load;
* ``path.pretrain_network_g`` may name a compact ``.safetensors`` checkpoint: the
  network is built at the widths and structure its metadata gives (BasicSR's
  loading convention, with no widths to copy into ``network_g``), its tensors
  are loaded and checked, and its provenance is recorded under ``parent`` in
  every checkpoint the run writes, so a fine-tuned model still says how it
  was searched;
* the step is :class:`~restore_dhp.models.train_step.TrainStep`: ``train.amp``
  (``bf16``/``fp16``) and ``train.capture: cuda_graph`` (see that module); the
  losses stay on the device until BasicSR logs them (every ``print_freq``);
* ``train.ema_decay: d`` (BasicSR's key, e.g. 0.999): ``net_g_ema`` keeps an exponential moving average of the
  parameters (one fused update per step) and a copy of the buffers (BatchNorm statistics, DHP masks; BasicSR
  leaves them at their initial values); validation runs it, the compact checkpoints hold it (their
  metadata says ``ema_decay``), and a resume reads it back from ``net_g_<iter>.pth`` (``params_ema``);
  ``val.also_live: true`` validates the trained (live) network too, logged as set ``<name>_live``: the average
  does not feed back into training, so one run with EMA gives both curves (the issue-23 arms rely on it);
* ``train.optim_g.type`` may be ``Adam`` or ``AdamW``; ``train.optim_g.weight_decay_params: body`` applies
  ``weight_decay`` to the body convs' weights only (``ArchSpec.body_convs``: from prunable channels to prunable channels),
  ``all`` (the default) to every parameter;
* ``train.freeze_bn_iter: N`` (optional): after iteration N every BatchNorm layer
  runs in eval mode while training: it normalises with, and no longer updates,
  its running statistics; its scale and shift still train.  A final stretch
  like this lets a network adapt to the fixed statistics it is evaluated with
  (the DnCNN DHP models needed it: see weights/README.md).
"""
from __future__ import annotations

import copy
import glob
import os
import time
from collections import OrderedDict

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DataParallel, DistributedDataParallel

from .. import network
from ..checkpoint import read_metadata, save_compact
from ..dhp import DHPNet, first_channels
from ..errors import OptionError
from ..fileio import atomic_path
from ..timing import device_name
from .precise_bn import RecentBatches, recompute_bn_statistics
from .train_step import TrainStep, parse_step_options


LIVE_SUFFIX = '_live'  # val.also_live: the set name the trained network's validation is logged under
RUNNING_SUFFIX = '_running'  # train.precise_bn: the validation with the running statistics, before recomputing


def with_compact_pretrain(opt: dict) -> tuple[dict, dict | None, dict | None]:
    """``(opt, widths, parent)`` for a compact ``path.pretrain_network_g``: ``opt`` with ``network_g`` completed by
    the file's constructor arguments (those ``network_g`` gives must agree), the widths to build it at and the
    provenance of the run's starting point.  ``(opt, None, None)`` when the run does not start from one.

    On a resume BasicSR points ``pretrain_network_g`` at the run's own ``net_g_<iter>.pth``: the widths
    then come from the compact file written beside it, and the provenance from that file's ``parent``.
    """
    net = opt['network_g']
    if 'checkpoint' in net or 'widths' in net:
        key = 'checkpoint' if 'checkpoint' in net else 'widths'
        raise OptionError(f"option network_g.{key} is not read: write 'path: {{pretrain_network_g: FILE}}' with a "
                          'compact checkpoint, and network_g.type (widths and structure come from the file)')
    path = (opt.get('path') or {}).get('pretrain_network_g')
    resumed = bool(path) and str(path).endswith('.pth') and os.path.isfile(os.path.splitext(path)[0] + '.safetensors')
    if resumed:
        path = os.path.splitext(path)[0] + '.safetensors'
    elif not path or not str(path).endswith('.safetensors'):
        return opt, None, None
    meta = read_metadata(path)
    try:
        same = network.registered_name(net.get('type', '')) == network.registered_name(meta['arch'])
    except KeyError:
        same = False
    if not same:
        raise OptionError(f"option network_g.type is {net.get('type')!r} but {path} holds a {meta['arch']}")
    for key, value in meta['arch_kwargs'].items():
        if key in net and net[key] != value:
            raise OptionError(f"option network_g.{key}={net[key]!r} differs from {path}'s {value!r}; "
                              'leave it out to use the file\'s')
    parent = meta['info'].get('parent') if resumed else {'file': path, **meta['info']}
    return {**opt, 'network_g': {**meta['arch_kwargs'], **net}}, meta['widths'], parent


#: ``train.optim_g.type`` -> the optimizer our models build (BasicSR's own builds Adam only)
OPTIMIZERS = {'Adam': torch.optim.Adam, 'AdamW': torch.optim.AdamW}
#: ``train.optim_g.weight_decay_params``: every parameter (default) or the body convs' weights only
WEIGHT_DECAY_PARAMS = ('all', 'body')

@MODEL_REGISTRY.register()
class RestorationModel(SRModel):
    #: record the provenance of a compact ``path.pretrain_network_g`` in saved checkpoints (the DHP
    #: search model writes its own search record instead)
    records_parent = True

    def __init__(self, opt):
        opt, widths, parent = with_compact_pretrain(opt)
        #: the widths network_g is narrowed to when built: a compact starting point's (or, set by the DHP model
        #: before this runs, those of the compact network a resumed fine-tuning continues)
        self._build_widths = getattr(self, '_build_widths', None) or widths
        self._parent = parent if self.records_parent else None
        if opt.get('is_train'):
            self._amp, self._capture = parse_step_options(opt['train'])
        self._step: TrainStep | None = None
        self._last_iter: int | None = None  # the iterations a run really took (BasicSR may stop short of total_iter)
        self._bn_frozen = False
        self._testing_live = False  # validating net_g although net_g_ema exists (val.also_live)
        # what the checkpoint says of its own training: every validation, and the wall time of all segments
        self._validation: list = []
        self._wall_before = 0.0
        self._started = time.monotonic()
        precise = (opt.get('train') or {}).get('precise_bn') if opt.get('is_train') else None
        self._recent = RecentBatches(precise) if precise else None
        self._bn_recomputed_at: int | None = None
        self._running: list = []  # (BatchNorm, its buffers before the last recomputation)
        super().__init__(opt)

    def optimize_parameters(self, current_iter):
        self._last_iter = current_iter
        self._freeze_bn_after(current_iter)
        if self._step is None:
            self._step = TrainStep(self.net_g, self._losses, self.optimizer_g, self.device, self._amp,
                                   self._capture, distributed=self.opt['dist'], notice=get_root_logger().warning)
        self.output, _ = self._step(self.lq, self.gt)
        if self._recent is not None:
            self._recent.add(self.lq)
        losses = self._step.losses
        # under DDP BasicSR averages the losses over ranks every step; otherwise they are read when logged
        self.log_dict = (self.reduce_loss_dict(losses) if self.opt['dist']
                         else OrderedDict((k, v.detach()) for k, v in losses.items()))
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def init_training_settings(self):
        """BasicSR's, except that ``net_g_ema`` is a copy of ``net_g`` (BasicSR builds it anew from ``network_g``,
        which is neither the DHP form nor a compact network's widths)."""
        decay = self.opt['train'].get('ema_decay', 0)
        self.opt['train']['ema_decay'] = 0
        try:
            super().init_training_settings()
        finally:
            self.opt['train']['ema_decay'] = decay
        self.ema_decay = decay
        if decay > 0:
            get_root_logger().info(f'Use Exponential Moving Average with decay: {decay}')
            self.net_g_ema = copy.deepcopy(self.get_bare_model(self.net_g)).eval()
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None and not str(load_path).endswith('.safetensors'):
                self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
            else:
                self.model_ema(0)

    @torch.no_grad()
    def model_ema(self, decay=0.999):
        """``net_g_ema``'s parameters moved towards ``net_g``'s by ``1 - decay`` (``decay=0``: copied), its
        buffers copied (BasicSR's own update leaves BatchNorm statistics and DHP masks at their initial values)."""
        net = self.get_bare_model(self.net_g)
        cached = getattr(self, '_ema_pairs', None)
        if cached is None or cached[0] is not net or cached[1] is not self.net_g_ema:
            live = {**dict(net.named_parameters()), **dict(net.named_buffers())}
            params = [(p, live[k]) for k, p in self.net_g_ema.named_parameters()]
            buffers = [(b, live[k]) for k, b in self.net_g_ema.named_buffers()]
            self._ema_pairs = cached = (net, self.net_g_ema, [list(t) for t in zip(*params)],
                                        [list(t) for t in zip(*buffers)])
        (ema_params, live_params), buffers = cached[2], cached[3]
        torch._foreach_lerp_(ema_params, live_params, 1 - decay)
        if buffers:
            torch._foreach_copy_(*buffers)

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        if optim_type not in OPTIMIZERS:
            raise OptionError(f"option train.optim_g.type must be one of {', '.join(OPTIMIZERS)}, got {optim_type!r}")
        return OPTIMIZERS[optim_type](params, lr, **kwargs)

    def setup_optimizers(self):
        optim = dict(self.opt['train']['optim_g'])
        optim_type = optim.pop('type')
        self.optimizer_g = self.get_optimizer(optim_type, weight_decay_groups(self.get_bare_model(self.net_g), optim),
                                              **optim)
        self.optimizers = [self.optimizer_g]

    def _losses(self, output, gt):
        """SRModel's losses: ``(total, {'l_pix': ..., 'l_percep': ..., 'l_style': ...})``."""
        total, losses = 0, OrderedDict()
        if self.cri_pix:
            losses['l_pix'] = self.cri_pix(output, gt)
            total = total + losses['l_pix']
        if self.cri_perceptual:
            percep, style = self.cri_perceptual(output, gt)
            for name, value in (('l_percep', percep), ('l_style', style)):
                if value is not None:
                    losses[name] = value
                    total = total + value
        return total, losses

    def reset_step(self):
        """Build the training step anew at the next iteration (new network, optimizer or train/eval mode)."""
        self._step = None

    def get_current_log(self):
        return {k: float(v) if torch.is_tensor(v) else v for k, v in self.log_dict.items()}

    def _bn_frozen_at(self, current_iter) -> bool:  # from the options: true after a resume and in eval mode too
        return (start := (self.opt.get('train') or {}).get('freeze_bn_iter')) is not None and current_iter > start

    def _freeze_bn_after(self, current_iter):
        if not self._bn_frozen_at(current_iter):
            return
        for m in self.get_bare_model(self.net_g).modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
        if not self._bn_frozen:  # the step's graph, if captured, ran BatchNorm in training mode
            self._bn_frozen = True
            self.reset_step()

    def prepare_network(self, net):
        """``network_g`` as built by BasicSR, with its structure recorded (:mod:`restore_dhp.network`) and, when the
        run starts from (or resumes after) a compact network, narrowed to its widths."""
        if getattr(net, network.ATTRIBUTE, None) is not None or isinstance(net, DHPNet):
            return net
        opt = dict(self.opt['network_g'])
        arch = opt.pop('type')
        widths = getattr(self, '_build_widths', None)
        if widths:
            first_channels(net, network.spec_of(arch, opt), widths)
        network.attach(net, arch, opt, widths)
        return net

    def model_to_device(self, net):
        net = self.prepare_network(net).to(self.device)
        if self.opt['dist']:
            find_unused = self.opt.get('find_unused_parameters', False)
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            return DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused)
        if self.opt['num_gpu'] > 1:
            return DataParallel(net)
        return net

    def test(self):
        if hasattr(self, 'net_g_ema') and not self._testing_live:
            return super().test()
        net = self.get_bare_model(self.net_g)
        net.eval()
        with torch.no_grad():
            self.output = net(self.lq)
        net.train()

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        label = 'latest' if current_iter == -1 else current_iter
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        saved = {key: {k[7:] if k.startswith('module.') else k: v.cpu()
                       for k, v in self.get_bare_model(n).state_dict().items()} for n, key in zip(nets, keys)}
        _atomic_save(saved, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))

    @master_only
    def save_training_state(self, epoch, current_iter):
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter,
                 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers], **self.extra_training_state()}
        _atomic_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def extra_training_state(self) -> dict:
        """Model-specific entries saved with the training state (read back in resume_training)."""
        return {'validation_history': self._validation, 'wall_time_s': self._wall_time()}

    def resume_training(self, resume_state):
        super().resume_training(resume_state)
        self._validation = list(resume_state.get('validation_history', []))
        self._wall_before = float(resume_state.get('wall_time_s', 0.0))
        self._started = time.monotonic()

    def _wall_time(self) -> float:
        return round(self._wall_before + time.monotonic() - self._started, 1)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        if not isinstance(current_iter, int):  # BasicSR's test pipeline passes the set's name: not training
            return super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        if self._recent is not None and not self._bn_frozen_at(current_iter):
            # what the running statistics give, logged as <set>_running, then the precise statistics
            self.recompute_bn(current_iter)
            self._swap_running_statistics()
            try:
                self._validate_as(dataloader, current_iter, tb_logger, RUNNING_SUFFIX, testing_live=False)
            finally:
                self._swap_running_statistics()
        super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        self._record_validation(current_iter, dataloader.dataset.opt['name'])
        if hasattr(self, 'net_g_ema') and (self.opt.get('val') or {}).get('also_live'):
            self._validate_as(dataloader, current_iter, tb_logger, LIVE_SUFFIX, testing_live=True)

    def _validate_as(self, dataloader, current_iter, tb_logger, suffix: str, testing_live: bool):
        """A validation logged and recorded under the set's name + ``suffix``."""
        dataset_opt = dataloader.dataset.opt
        name = dataset_opt['name']
        dataset_opt['name'], self._testing_live = name + suffix, testing_live
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, False)
            self._record_validation(current_iter, dataset_opt['name'])
        finally:
            dataset_opt['name'], self._testing_live = name, False

    def recompute_bn(self, current_iter) -> None:
        """``train.precise_bn``: the BatchNorm statistics of the trained (and averaged) network recomputed on the
        recent training batches, once per iteration (:mod:`restore_dhp.models.precise_bn`)."""
        if not self._recent or self._bn_recomputed_at == current_iter or self._bn_frozen_at(current_iter):
            return   # (frozen: the running statistics are what it trains with)
        nets = [self.get_bare_model(self.net_g)] + ([self.net_g_ema] if hasattr(self, 'net_g_ema') else [])
        norms = [m for net in nets for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        self._running = [(m, {k: b.clone() for k, b in m.named_buffers()}) for m in norms]
        for net in nets:
            recompute_bn_statistics(net, self._recent.batches, self.device)
        self._bn_recomputed_at = current_iter

    @torch.no_grad()
    def _swap_running_statistics(self) -> None:
        """Exchange the BatchNorm statistics with those kept from before the last recomputation."""
        for module, kept in self._running:
            for name, buffer in module.named_buffers():
                now = buffer.clone()
                buffer.copy_(kept[name])
                kept[name] = now

    def _record_validation(self, current_iter, set_name):
        self._validation.append([int(current_iter), set_name,
                                 {k: round(float(v), 4) for k, v in self.metric_results.items()}])

    def save(self, epoch, current_iter):
        if current_iter != -1:
            self.recompute_bn(current_iter)
        super().save(epoch, current_iter)
        self.save_safetensors(current_iter)

    @master_only
    def save_safetensors(self, current_iter, info: dict | None = None) -> str | None:
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        if isinstance(net, DHPNet):
            return None
        label = 'latest' if current_iter == -1 else current_iter
        path = os.path.join(self.opt['path']['models'], f'net_g_{label}.safetensors')
        root = self.opt['path'].get('experiments_root', '')
        copied = sorted(glob.glob(os.path.join(root, '*.yml'))) if root else []
        provenance = {'experiment': self.opt['name'], 'iteration': label,
                      'option_file': os.path.basename(copied[0]) if copied else None,
                      'total_iter': self.opt.get('train', {}).get('total_iter'),
                      'iterations_run': self._last_iter,
                      'trained_on': device_name(self.device), 'torch': torch.__version__,
                      'wall_time_s': self._wall_time(), 'validation': self._validation}
        if hasattr(self, 'net_g_ema'):
            provenance['ema_decay'] = self.ema_decay
        if self._parent:
            provenance['parent'] = self._parent
        provenance.update(info or {})
        save_compact(net, path, info=provenance)
        get_root_logger().info(f'Saved compact checkpoint {path}')
        return path


def weight_decay_groups(net, optim: dict) -> list:
    """The parameters to optimise, in groups for ``optim``'s ``weight_decay_params`` (popped from ``optim``):
    ``all`` (default) one group; ``body`` the body convs' weights (with ``optim``'s weight decay) and the rest
    (none)."""
    which = optim.pop('weight_decay_params', WEIGHT_DECAY_PARAMS[0])
    params = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    if which == 'all':
        return [p for _, p in params]
    if which not in WEIGHT_DECAY_PARAMS:
        raise OptionError('option train.optim_g.weight_decay_params must be one of '
                          f"{', '.join(WEIGHT_DECAY_PARAMS)}, got {which!r}")
    if isinstance(net, DHPNet):
        raise OptionError('option train.optim_g.weight_decay_params: body needs a plain network '
                          f'(the DHP form generates its conv weights), got {type(net).__name__}')
    body = {f'{module}.weight' for module in network.structure(net).spec.body_convs}
    return [{'params': [p for name, p in params if name in body]},
            {'params': [p for name, p in params if name not in body], 'weight_decay': 0.0}]


def _atomic_save(obj, path: str) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
