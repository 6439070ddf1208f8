"""Assembling the :class:`~restore_dhp.dhp.spec.ArchSpec` of a finished trace (:mod:`restore_dhp.dhp.trace`): an
architecture's hints applied (``ties``: conv outputs that are one group; ``names``: conv module -> group name), every
group named (its hint, else the module path of the conv that made it), segments and layers written out."""
from __future__ import annotations

from .channel_graph import TraceError
from .spec import ArchSpec, ConvSpec, LayerSpec, Segment


def apply_hints(t) -> None:
    for a, b in t.hints.get('ties', ()):
        if a not in t.module_convs or b not in t.module_convs:
            raise TraceError(f'dhp_hints tie ({a}, {b}): no conv module of that name')
        ga = t.convs[t.module_convs[a]]['out'][0].gid
        gb = t.convs[t.module_convs[b]]['out'][0].gid
        if t.g.width[t.g.find(ga)] != t.g.width[t.g.find(gb)]:
            raise TraceError(f'dhp_hints tie ({a}, {b}): their output groups differ in width')
        t.g.union(ga, gb)

def group_names(t) -> dict[int, str]:
    named = {}
    for module, name in (t.hints.get('names') or {}).items():
        if module not in t.module_convs:
            raise TraceError(f'dhp_hints name {name!r}: no conv module {module!r}')
        named.setdefault(t.g.find(t.convs[t.module_convs[module]]['out'][0].gid), name)
    out, taken = {}, set(named.values())
    for gid in range(len(t.g.parent)):
        root = t.g.find(gid)
        if root in out:
            continue
        name = named.get(root) or t.g.origin[root]
        if name in taken - {named.get(root)} or name in out.values():
            i = 2
            while f'{name}#{i}' in taken or f'{name}#{i}' in out.values():
                i += 1
            name = f'{name}#{i}'
        out[root] = name
    return out

def assemble(t) -> ArchSpec:
    """The :class:`ArchSpec` of a finished walk (hints applied, groups named)."""
    apply_hints(t)
    names = group_names(t)
    used = set()

    def space(segs) -> tuple:
        out = []
        for s in segs:
            used.add(t.g.find(s.gid))
            out.append(Segment(names[t.g.find(s.gid)], s.per))
        return tuple(out)

    convs = {}
    for call, c in t.convs.items():
        out = c['out'][0]
        convs[call] = ConvSpec(space(c['inputs']), names[t.g.find(out.gid)], c['kernel'], out.per, *c['scale'],
                               c['transposed'], c['depthwise'], c['bias'], c['module'], c['taps'])
        used.add(t.g.find(out.gid))
    norms = {m: LayerSpec(space(n['space']), *n['scale']) for m, n in t.norms.items()}
    acts = {m: LayerSpec(space(a['space']), *a['scale']) for m, a in t.acts.items()}
    params = {p: LayerSpec(space(u['space']), 1, 0, u['dim']) for p, u in t.params_used.items()}
    roots = sorted(used, key=lambda r: (not t.g.fixed[r], r))
    widths = {names[r]: t.g.width[r] for r in roots}
    fixed = frozenset(names[r] for r in roots if t.g.fixed[r])
    image = {r for r in roots if t.g.origin[r] in ('image_in', 'image_out')}
    unprunable = []
    for why, gs in t.g.reasons:  # a fix that only touched image channels was no loss
        lost = sorted({names[t.g.find(g)] for g in gs if t.g.find(g) not in image and t.g.find(g) in used})
        if lost:
            unprunable.append(f"{why}: fixes {', '.join(lost)}")
    in_channels = t.shape(next(n for n in t.ep.graph.nodes if n.name in t.user_inputs))[1]
    scale = t.output_hw[0] // t.input_hw[0] if t.output_hw and t.input_hw else 1
    return ArchSpec(widths, fixed, convs, norms, acts, params, tuple(unprunable), in_channels, scale)
