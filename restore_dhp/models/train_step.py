"""One training step (forward, loss, backward, optimizer step), optionally in mixed precision and captured.

Options (``train:`` section of an option file):

* ``amp: bf16 | fp16`` — autocast the forward and the loss.  ``bf16`` runs on
  CUDA and on the CPU; ``fp16`` needs CUDA (it scales the loss with a
  ``GradScaler``, which reads one flag back per step) and falls back to fp32
  with a notice elsewhere.
* ``capture: cuda_graph`` — after 3 eager warm-up steps on a side stream, the
  forward, loss and backward are captured in one CUDA graph and replayed each
  step (inputs copied into static buffers); the optimizer step, and the DHP
  proximal step after it, run eagerly on the device without host
  synchronisation.  Masks, latents and BatchNorm statistics are updated in
  place, so the graph stays valid through a DHP search; the owner calls
  :meth:`TrainStep` again (a new one) after compaction or any change of
  train/eval mode.  Without CUDA, or under DDP, the step runs eagerly and says so.

The loss is returned as a device tensor: reading it (``float``) is the only
synchronisation, and BasicSR reads it only every ``logger.print_freq`` iterations.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
CAPTURE_MODES = ('cuda_graph',)
WARMUP_STEPS = 3


def parse_step_options(train_opt: dict) -> tuple[str | None, str | None]:
    """``(amp, capture)`` from the ``train`` options; a bad value raises ``ValueError`` naming the key."""
    amp, capture = train_opt.get('amp'), train_opt.get('capture')
    amp = None if amp in (None, False, 'none') else amp
    capture = None if capture in (None, False, 'none') else capture
    if amp is not None and amp not in AMP_DTYPES:
        raise ValueError(f"option train.amp must be one of {', '.join(AMP_DTYPES)} or none, got {amp!r}")
    if capture is not None and capture not in CAPTURE_MODES:
        raise ValueError(f"option train.capture must be one of {', '.join(CAPTURE_MODES)} or none, got {capture!r}")
    return amp, capture


class TrainStep:
    """``step(lq, gt) -> (output, loss)`` for ``net`` with ``loss_fn(output, gt) -> (total, {name: loss})``."""

    def __init__(self, net: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, device: torch.device,
                 amp: str | None = None, capture: str | None = None, distributed: bool = False,
                 notice: Callable[[str], None] = print):
        self.net, self.loss_fn, self.optimizer = net, loss_fn, optimizer
        self.device_type = device.type
        if amp == 'fp16' and device.type != 'cuda':
            notice('train.amp fp16 needs CUDA; training in fp32')
            amp = None
        if capture and (device.type != 'cuda' or distributed):
            notice(f"train.capture {capture} needs one CUDA device (no DDP); running the step eagerly")
            capture = None
        self.dtype = AMP_DTYPES.get(amp)
        self.scaler = torch.amp.GradScaler('cuda') if amp == 'fp16' else None
        self.capture = capture
        self.steps = 0
        self.losses: dict[str, torch.Tensor] = {}
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: dict[str, torch.Tensor] = {}

    def __call__(self, lq: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.steps += 1
        if not self.capture:
            self.optimizer.zero_grad(set_to_none=True)
            output, total = self._forward_backward(lq, gt)
        elif self.graph is not None and lq.shape == self.static['lq'].shape and gt.shape == self.static['gt'].shape:
            self.static['lq'].copy_(lq)
            self.static['gt'].copy_(gt)
            self.graph.replay()
            output, total = self.static['output'], self.static['total']
        elif self.steps <= WARMUP_STEPS or self.graph is not None:  # warm-up (or an odd-shaped batch): eager
            output, total = self._eager_on_side_stream(lq, gt)
        else:
            output, total = self._capture(lq, gt)
        self._optimizer_step()
        return output, total

    def _forward_backward(self, lq, gt):
        with torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            output = self.net(lq)
            total, self.losses = self.loss_fn(output, gt)
        (self.scaler.scale(total) if self.scaler else total).backward()
        return output, total.detach()

    def _optimizer_step(self):
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def _eager_on_side_stream(self, lq, gt):
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self.optimizer.zero_grad(set_to_none=True)
            result = self._forward_backward(lq, gt)
        torch.cuda.current_stream().wait_stream(stream)
        return result

    def _capture(self, lq, gt):
        self.static = {'lq': lq.clone(), 'gt': gt.clone()}
        self.optimizer.zero_grad(set_to_none=True)  # the graph allocates the gradients it writes each replay
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            output, total = self._forward_backward(self.static['lq'], self.static['gt'])
        self.static.update(output=output, total=total)
        self.graph.replay()
        return output, total
