"""The DHP search model: the only place where training meets pruning.

``network_g`` is any plain network a BasicSR registry builds (this project's SRResNet, DnCNN, UNetDenoiser;
BasicSR's EDSR, RCAN, RRDBNet ...; a user's own).  Its width groups are traced (:mod:`restore_dhp.dhp.trace`;
the log lists them, and every op that fixed one) and its DHP form wraps it (:class:`restore_dhp.dhp.DHPNet`).
With a compact ``path.pretrain_network_g`` the search is warm-started: the hypernetworks are set so that, at
iteration 0, the DHP network computes what the trained network does (:mod:`restore_dhp.dhp.warm`; the log states
the largest output difference on a batch, and the search record keeps it).

One run does search -> compaction -> fine-tuning:

1. **search**: an ordinary training step of the hypernetwork-generated network,
   then the proximal step on every latent vector with the current learning
   rate (``z <- prox_{lambda * lr}(z)``); every ``mask_interval`` iterations the
   masks are recomputed and the remaining cost ratio and widths are logged:
   FLOPs (``dhp.target_ratio``) or the latency predicted by a measured table
   (``dhp.target: {latency: 0.4, table: FILE}``, :mod:`restore_dhp.latency`).
   The search itself (prox, schedule, mask check, refill, stop) is a
   :class:`restore_dhp.dhp.DHPPruner`; this model calls ``pruner.step`` and compacts when it says stop;
2. when the ratio is at most ``target_ratio + ratio_tolerance`` (if one check
   prunes past ``target_ratio - ratio_tolerance``, the channels pruned since
   the previous check are refilled, most important first, up to the target), or
   ``max_search_iter`` is reached; never before ``min_search_iter``: with
   ``target_ratio: 1.0`` and ``min_search_iter = max_search_iter = N`` the
   network is trained exactly like a DHP run for N iterations and compacted at
   full width, the pruned models' recipe for the baseline) the network is **compacted**: the compact
   checkpoint ``models/compact_search.safetensors``, the full search state
   ``models/net_g_search_<iter>.pth`` and ``models/search_summary.json`` are
   written, saying which condition stopped the search and the ratio reached;
3. the remaining iterations **fine-tune** the compact network as a plain
   network with a fresh optimizer and scheduler built by BasicSR's own
   ``setup_optimizers``/``setup_schedulers``, the scheduler stepped up to the
   current iteration (same learning-rate schedule); every save writes
   ``models/net_g_<iter>.safetensors``.

With ``train.ema_decay`` the average (``net_g_ema``) follows the search network, and at compaction it
restarts from the compact network: averaging the hypernetworks' parameters is not averaging the weights they
generate, and the proximal step keeps shrinking the latents the average lags behind.  The fine-tuning's
validations and checkpoints then use the average of the compact network.

Resume (BasicSR's ``--auto_resume`` or ``path.resume_state``) works in either
phase: a resume state saved after compaction rebuilds the compact network from
``compact_search.safetensors`` before loading its weights.
"""
from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY

from ..checkpoint import load_state_checked, read_metadata, read_tensors, save_compact
from .. import network
from ..dhp import DEFAULT_KEEP_THRESHOLD, HYPER_INITS, PROX_TYPES, DHPNet, DHPPruner, FlopsTable, KeepRule, Schedule, WidthCost
from ..dhp.warm import WARM_STARTS, warm_start
from ..fileio import write_text
from ..latency import LatencyError, file_sha256, read_table
from ..errors import OptionError
from .restoration_model import RestorationModel, weight_decay_groups

COMPACT_FILE = 'compact_search.safetensors'
SUMMARY_FILE = 'search_summary.json'


@dataclass(frozen=True)
class SearchOptions:
    target_ratio: float | None = None  # a fraction of the baseline's FLOPs (or give `target`)
    target: dict | None = None         # {latency: fraction, table: FILE}: a fraction of the full width's latency there
    ratio_tolerance: float = 0.02
    regularization: float = 0.1        # lambda of the l1 (or l2) penalty on the latents
    prox: str = 'l1'
    min_width: int = 4
    keep_threshold: float = DEFAULT_KEEP_THRESHOLD
    mask_interval: int = 100
    max_search_iter: int | None = None  # default: the whole run may search
    min_search_iter: int = 0           # search at least this long, even once the target is reached
    round_to: int | str = 1            # round kept widths up to a multiple of this; 'auto': the table's width step
    flops_input_size: int = 128
    embedding_dim: int = 8             # of the hypernetworks (the paper's 8)
    warm_start: str = 'saliency'       # from a compact path.pretrain_network_g: see restore_dhp.dhp.warm
    normalize_latents: bool = False    # hypernetworks read latents / their group's RMS (restore_dhp.dhp.net)
    hyper_init: str = 'module'         # generated convs start at the scale of network_g's own init ('he': He's)
    hyper_lr_scale: float = 1.0        # the hypernetworks' learning rate in the search, over optim_g's lr

    @property
    def ratio(self) -> float:
        """The target as a fraction of the full width's cost (FLOPs, or latency on the table)."""
        return self.target['latency'] if self.target else self.target_ratio

    @classmethod
    def from_opt(cls, section) -> 'SearchOptions':
        if not isinstance(section, dict):
            raise OptionError("option 'dhp' must be a mapping with 'target_ratio' or 'target'")
        fields = cls.__dataclass_fields__
        unknown = sorted(set(section) - set(fields))
        if unknown:
            raise OptionError(f"unknown option dhp.{unknown[0]}; known: {', '.join(fields)}")
        if ('target_ratio' in section) == ('target' in section):
            raise OptionError('option dhp needs one of target_ratio (e.g. 0.4 for DHP-40) and target '
                              '(e.g. {latency: 0.4, table: FILE})')
        values = {'target': check_latency_target(section['target'])} if 'target' in section else {}
        if section.get('round_to') == 'auto':
            if 'target' not in section:
                raise OptionError('option dhp.round_to: auto takes the width step of a latency table; '
                                  'give dhp.target or a number')
            values['round_to'] = 'auto'
        for name, value in section.items():
            if name in values:
                continue
            kind = float if name in ('target_ratio', 'ratio_tolerance', 'regularization', 'keep_threshold',
                                     'hyper_lr_scale') else (
                str if name in ('prox', 'warm_start', 'hyper_init') else bool if name == 'normalize_latents' else int)
            if value is None and name == 'max_search_iter':
                values[name] = None
                continue
            ok = isinstance(value, bool) if kind is bool else (
                isinstance(value, kind) and not isinstance(value, bool)
                or (kind is float and isinstance(value, int) and not isinstance(value, bool)))
            if not ok:
                raise OptionError(f'option dhp.{name} must be {kind.__name__}, got {value!r}')
            values[name] = float(value) if kind is float else value
        opts = cls(**values)
        if opts.target is None and not 0 < opts.target_ratio <= 1:
            raise OptionError(f'option dhp.target_ratio must be in (0, 1], got {opts.target_ratio}')
        if opts.warm_start not in WARM_STARTS:
            raise OptionError(f'option dhp.warm_start must be one of {WARM_STARTS}, got {opts.warm_start!r}')
        if opts.hyper_init not in HYPER_INITS:
            raise OptionError(f'option dhp.hyper_init must be one of {HYPER_INITS}, got {opts.hyper_init!r}')
        if opts.prox not in PROX_TYPES:
            raise OptionError(f'option dhp.prox must be one of {PROX_TYPES}, got {opts.prox!r}')
        for name in ('ratio_tolerance', 'regularization', 'keep_threshold', 'hyper_lr_scale'):
            if getattr(opts, name) < 0:
                raise OptionError(f'option dhp.{name} must be >= 0')
        for name in ('min_width', 'mask_interval', 'round_to', 'flops_input_size', 'embedding_dim'):
            if getattr(opts, name) != 'auto' and getattr(opts, name) < 1:
                raise OptionError(f'option dhp.{name} must be >= 1')
        if opts.max_search_iter is not None and opts.max_search_iter < 1:
            raise OptionError('option dhp.max_search_iter must be >= 1')
        if opts.min_search_iter < 0:
            raise OptionError('option dhp.min_search_iter must be >= 0')
        if opts.max_search_iter is not None and opts.min_search_iter > opts.max_search_iter:
            raise OptionError(f'option dhp.min_search_iter ({opts.min_search_iter}) must be <= '
                              f'dhp.max_search_iter ({opts.max_search_iter})')
        return opts

    def cost(self, spec) -> WidthCost:
        """What the search prices widths by: the latency table of ``target``, else FLOPs (of ``spec``)."""
        if self.target is None:
            return FlopsTable(spec, self.flops_input_size)
        try:
            return read_table(self.target['table'], spec)
        except LatencyError as e:
            raise OptionError(f'option dhp.target.table: {e}') from None

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.mask_interval, self.min_search_iter, self.max_search_iter)

    def keep_rule(self, cost: WidthCost) -> KeepRule:
        round_to = cost.width_step if self.round_to == 'auto' else self.round_to
        return KeepRule(self.keep_threshold, round_to, self.min_width)


def check_latency_target(target) -> dict:
    """``dhp.target``: ``{latency: fraction in (0, 1], table: FILE}`` (the file is read when the search starts)."""
    if not isinstance(target, dict) or set(target) != {'latency', 'table'}:
        raise OptionError(f'option dhp.target must be a mapping {{latency: 0.4, table: FILE}}, got {target!r}')
    latency, table = target['latency'], target['table']
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 < latency <= 1:
        raise OptionError(f'option dhp.target.latency must be a fraction in (0, 1] of the full width\'s latency, '
                          f'got {latency!r}')
    if not isinstance(table, str) or not table:
        raise OptionError(f'option dhp.target.table must be the path of a latency table, got {table!r}')
    return {'latency': float(latency), 'table': table}


@MODEL_REGISTRY.register()
class DHPSearchModel(RestorationModel):
    records_parent = False

    def __init__(self, opt):
        self.search = SearchOptions.from_opt(opt.get('dhp'))
        self._train_opt = copy.deepcopy(opt.get('train'))
        self.phase = 'search'
        self.search_record: dict | None = None
        self.pruner: DHPPruner | None = None
        self.warm_record: dict | None = None
        compact_path = self._compact_to_resume(opt)
        if compact_path:  # resumed after compaction: the compact network is rebuilt, BasicSR loads its .pth
            self._build_widths = read_metadata(compact_path)['widths']
            self.phase = 'finetune'
        super().__init__(opt)
        if self.search.max_search_iter is None and self._train_opt:
            self.search = SearchOptions(**{**asdict(self.search), 'max_search_iter': self._train_opt['total_iter']})
        if self.phase == 'search':  # costs are fractions of the architecture's full width
            net, s = self.get_bare_model(self.net_g), self.search
            full = network.structure(net.net).spec
            cost = s.cost(full)
            self.pruner = DHPPruner(net, s.ratio, ratio_tolerance=s.ratio_tolerance, regularization=s.regularization,
                                    prox=s.prox, rule=s.keep_rule(cost), cost=cost, schedule=s.schedule)
            self.flops = cost if isinstance(cost, FlopsTable) else FlopsTable(full, s.flops_input_size)

    def prepare_network(self, net):
        """In the search phase the plain ``network_g`` becomes its DHP form (traced, generated by hypernetworks)."""
        net = super().prepare_network(net)
        if self.phase != 'search' or isinstance(net, DHPNet):
            return net
        structure = network.structure(net)
        spec = structure.spec.at(structure.widths)
        logger = get_root_logger()
        logger.info(f"DHP: traced {type(net).__name__}: {len(spec.prunable_groups)} prunable groups "
                    f"{ {g: spec.group_widths[g] for g in spec.prunable_groups} }, fixed {sorted(spec.fixed_groups)}")
        for line in spec.unprunable:
            logger.info(f'DHP: unprunable: {line}')
        pretrain = self.opt['path'].get('pretrain_network_g')
        state = None
        if pretrain and str(pretrain).endswith('.safetensors'):  # a warm start from trained weights
            state = read_tensors(pretrain)
            load_state_checked(net, state, pretrain)
            x = torch.rand(2, structure.in_channels, 48, 48, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                reference = net.eval()(x)
        try:
            dhp = DHPNet(net, spec, embedding_dim=self.search.embedding_dim,
                         normalize_latents=self.search.normalize_latents, hyper_init=self.search.hyper_init)
        except ValueError as e:
            raise OptionError(f"network_g {type(net).__name__}: {e}") from None
        if state is not None:
            warm_start(dhp, state, self.search.warm_start)
            with torch.no_grad():
                difference = float((dhp.eval()(x) - reference).abs().max())
            dhp.train()
            self.warm_record = {'file': pretrain, 'mode': self.search.warm_start, 'max_abs_difference': difference}
            logger.info(f'DHP warm start from {pretrain} ({self.search.warm_start}): at iteration 0 the DHP network '
                        f'reproduces it, max |difference| {difference:.2e} on a {tuple(x.shape)} batch')
        return dhp

    def load_network(self, net, load_path, strict=True, param_key='params'):
        """A compact ``pretrain_network_g`` of the search phase was read by the warm start (prepare_network)."""
        if self.phase == 'search' and str(load_path).endswith('.safetensors'):
            return
        return super().load_network(net, load_path, strict, param_key)

    # ------------------------------------------------------------------ resume
    @staticmethod
    def _compact_to_resume(opt) -> str | None:
        """The compact checkpoint to rebuild from when resuming after compaction, else None."""
        resume = opt['path'].get('resume_state') if opt.get('is_train') else None
        models_dir = opt['path'].get('models')
        if not resume or not models_dir:
            return None
        summary_path = os.path.join(models_dir, SUMMARY_FILE)
        if not os.path.exists(summary_path):
            return None
        with open(summary_path) as f:
            summary = json.load(f)
        resume_iter = int(os.path.basename(resume).split('.')[0])
        return os.path.join(models_dir, COMPACT_FILE) if summary['iteration'] <= resume_iter else None

    def extra_training_state(self) -> dict:
        own = {'dhp_pruner': self.pruner.state_dict()} if self.phase == 'search' else {}
        return {**super().extra_training_state(), **own}

    def resume_training(self, resume_state):
        try:
            super().resume_training(resume_state)
        except ValueError as e:  # torch: "loaded state dict contains a parameter group that doesn't match ..."
            raise RuntimeError(f'cannot resume from this training state: its optimizer does not match the '
                               f'network ({str(e).splitlines()[0]}); it was written by an older restore_dhp '
                               f'(per-conv hypernetworks): restart the run') from None
        if self.phase == 'search' and 'dhp_pruner' in resume_state:  # lets the first check refill
            self.pruner.load_state_dict(resume_state['dhp_pruner'])

    # ------------------------------------------------------------------ optimisation
    def setup_optimizers(self):
        optim = copy.deepcopy(self._train_opt['optim_g'])
        optim_type = optim.pop('type')
        net = self.get_bare_model(self.net_g)
        if self.phase == 'search':
            self.latent_params = {'params': net.latent_parameters(), 'weight_decay': 0.0}
            hyper = {'params': [p for p in net.hypernetwork_parameters() if p.requires_grad]}
            if self.search.hyper_lr_scale != 1:
                hyper['lr'] = optim['lr'] * self.search.hyper_lr_scale
            params = [hyper, self.latent_params]
            if optim.pop('weight_decay_params', 'all') != 'all':
                raise OptionError('option train.optim_g.weight_decay_params must be all for DHPSearchModel '
                                  '(the search network generates its conv weights)')
        else:
            params = weight_decay_groups(net, optim)
        self.optimizer_g = self.get_optimizer(optim_type, params, **optim)
        self.optimizers = [self.optimizer_g]

    def optimize_parameters(self, current_iter):
        super().optimize_parameters(current_iter)
        if self.phase != 'search':
            return
        step = self.pruner.step(current_iter, self._latent_group()['lr'])
        if step is not None:
            self._log_check(step)
            if step.stop:
                self._compact_and_switch(current_iter, step.stop, step.check.ratio, step.check.widths)

    def _latent_group(self) -> dict:
        """The optimizer's param group of the latents (its learning rate scales the proximal step)."""
        latents = self.latent_params['params'][0]
        return next(g for g in self.optimizer_g.param_groups if any(p is latents for p in g['params']))

    def _log_check(self, step):
        check, it = step.check, step.iteration
        logger = get_root_logger()
        kind = 'FLOPs' if self.search.target is None else 'latency'
        if check.refilled_from is not None:
            how = 'refilled to' if check.landed_from is None else f'come back only in chunks over the target: ' \
                f'landed from the last check ({check.landed_from:.4f}), those groups held at their width there, to'
            logger.info(f'DHP search iter {it}: {kind} ratio fell to {check.refilled_from:.4f}, below target '
                        f'{self.search.ratio}; channels pruned since the last check {how} {check.ratio:.4f}')
        elif check.landed_from is not None:
            logger.warning(f'DHP search iter {it}: dhp.max_search_iter reached at {kind} ratio '
                           f'{check.landed_from:.4f}, above target {self.search.ratio}; pruned to {check.ratio:.4f} '
                           'by the latents as they are (largest kept). A stronger dhp.regularization or a later '
                           'max_search_iter lets the search itself get there')
        self._check_ranks_agree()
        self.log_dict[f'{kind.lower()}_ratio'] = check.ratio
        logger.info(f'DHP search iter {it}: {kind} ratio {check.ratio:.4f} '
                    f'(target {self.search.ratio}), widths {check.widths}')

    def _check_ranks_agree(self):
        """Under DDP every rank must hold the same latents and masks (they do: the prox is deterministic)."""
        if not self.opt['dist']:
            return
        net = self.get_bare_model(self.net_g)
        state = torch.cat([net.latents.detach(), net.masks])
        digest = torch.stack([state.sum(), (state * torch.arange(1, state.numel() + 1, device=state.device)).sum()])
        gathered = [torch.zeros_like(digest) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, digest)
        if any(not torch.equal(g, gathered[0]) for g in gathered):
            raise RuntimeError('DHP latents or masks differ between ranks')

    def _compact_and_switch(self, current_iter, reason, ratio, widths):
        flops_ratio = self.flops.ratio(widths)
        self.search_record = {'iteration': current_iter, 'stop_reason': reason, 'flops_ratio': flops_ratio,
                              'target_ratio': self.search.target_ratio, 'widths': widths,
                              'search_options': asdict(self.search), **self._latency_record(ratio, widths)}
        if self.warm_record:
            self.search_record['warm_start'] = self.warm_record
        get_root_logger().info(f'DHP search stopped at iter {current_iter} ({reason}): cost ratio {ratio:.4f}, '
                               f'FLOPs ratio {flops_ratio:.4f}; compacting and fine-tuning the compact network')
        self.save_network(self.net_g, 'net_g_search', current_iter)  # the full search state
        compact, kept = self.get_bare_model(self.net_g).compact()
        network.with_widths(compact, kept)
        compact.train()
        self._write_search_results(compact)
        self.phase, self.pruner = 'finetune', None
        self.net_g = self.model_to_device(compact)
        if hasattr(self, 'net_g_ema'):  # the average restarts from the compact network (see the module)
            self.net_g_ema = copy.deepcopy(compact).eval()
        self.reset_step()
        self.opt['train'] = copy.deepcopy(self._train_opt)  # BasicSR's setup pops 'type' from its sections
        self.setup_optimizers()
        self.schedulers = []
        self.setup_schedulers()
        with warnings.catch_warnings():  # stepping a fresh scheduler before its optimizer is the point here
            warnings.filterwarnings('ignore', message='Detected call of `lr_scheduler.step()`')
            for scheduler in self.schedulers:
                for _ in range(current_iter):
                    scheduler.step()

    def _latency_record(self, ratio: float, widths: dict) -> dict:
        """For a latency target: the target, the table (what it was measured on, its SHA-256), the predicted latency."""
        if self.search.target is None:
            return {}
        cost = self.pruner.cost
        return {'target': self.search.target, 'latency_table': {**cost.describe(), 'sha256': file_sha256(cost.source)},
                'predicted_latency_us': cost.cost(widths), 'predicted_latency_ratio': ratio,
                'round_to': self.pruner.rule.round_to}

    @master_only
    def _write_search_results(self, compact):
        models_dir = self.opt['path']['models']
        info = {'experiment': self.opt['name'], 'stage': 'search', **self.search_record}
        save_compact(compact, os.path.join(models_dir, COMPACT_FILE), info=info)
        write_text(os.path.join(models_dir, SUMMARY_FILE), json.dumps(self.search_record, indent=2))

    def save_safetensors(self, current_iter, info=None):
        if self.phase != 'finetune':
            return None
        record = self.search_record
        if record is None:  # resumed after compaction: the summary is on disk
            with open(os.path.join(self.opt['path']['models'], SUMMARY_FILE)) as f:
                record = self.search_record = json.load(f)
        return super().save_safetensors(current_iter, {'stage': 'search+finetune', 'search': record,
                                                       **(info or {})})
