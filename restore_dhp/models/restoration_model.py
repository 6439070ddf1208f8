"""BasicSR's SRModel, made CPU/gloo-safe and writing shippable safetensors checkpoints.

Used by the baseline and fine-tuning option files (``model_type: RestorationModel``)
and as the base of the DHP search model.  Differences from ``SRModel``:

* DistributedDataParallel is created without CUDA device ids on CPU
  (``torchrun`` + gloo), BasicSR passes ``torch.cuda.current_device()``;
* every save also writes the plain network as a self-describing compact
  checkpoint ``models/net_g_<iter>.safetensors`` (``..._latest``), the format the
  benchmark, inference and the demo load.
"""
from __future__ import annotations

import os

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn.parallel import DataParallel, DistributedDataParallel

from ..archs.forms import CompactForm
from ..checkpoint import save_compact


@MODEL_REGISTRY.register()
class RestorationModel(SRModel):

    def model_to_device(self, net):
        net = net.to(self.device)
        if self.opt['dist']:
            find_unused = self.opt.get('find_unused_parameters', False)
            device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
            return DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused)
        if self.opt['num_gpu'] > 1:
            return DataParallel(net)
        return net

    def save(self, epoch, current_iter):
        super().save(epoch, current_iter)
        self.save_safetensors(current_iter)

    @master_only
    def save_safetensors(self, current_iter, info: dict | None = None) -> str | None:
        net = self.get_bare_model(self.net_g)
        if not isinstance(net, CompactForm):
            return None
        label = 'latest' if current_iter == -1 else current_iter
        path = os.path.join(self.opt['path']['models'], f'net_g_{label}.safetensors')
        provenance = {'experiment': self.opt['name'], 'iteration': label,
                      'options': os.path.basename(self.opt.get('opt_path', '') or '')}
        provenance.update(info or {})
        save_compact(net, path, info=provenance)
        get_root_logger().info(f'Saved compact checkpoint {path}')
        return path
