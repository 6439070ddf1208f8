"""Channel groups as the tracer finds them: a union-find of groups, and the segments of feature maps that name them.

A feature map's channels are a tuple of segments ``(group, per)``: the group's entries, each repeated ``per`` times
in a row.  Uniting two groups makes them one latent vector; refining a group (a ``pixel_shuffle`` reading it)
makes each entry cover several of its present entries, which rewrites ``per`` in every segment that names it.
"""
from __future__ import annotations


class TraceError(ValueError):
    """The network cannot be traced (the message says why, in one line)."""


class Seg:
    """A mutable segment: refining a group rewrites every segment that names it (see :meth:`_Graph.refine`)."""
    __slots__ = ('gid', 'per')

    def __init__(self, gid: int, per: int):
        self.gid, self.per = gid, per


class ChannelGraph:
    """Union-find of channel groups, and the segments that name them."""

    def __init__(self):
        self.parent: list[int] = []
        self.width: list[int] = []
        self.fixed: list[bool] = []
        self.origin: list[str] = []          # the module path (or role) that made the group, for its name
        self.segments: list[_Seg] = []
        self.reasons: list[str] = []

    def new(self, width: int, origin: str, fixed: bool = False) -> tuple:
        gid = len(self.parent)
        self.parent.append(gid)
        self.width.append(width)
        self.fixed.append(fixed)
        self.origin.append(origin)
        return (self.seg(gid, 1),)

    def seg(self, gid: int, per: int) -> Seg:
        s = Seg(gid, per)
        self.segments.append(s)
        return s

    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def channels(self, space) -> int:
        return sum(self.width[self.find(s.gid)] * s.per for s in space)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.width[ra] != self.width[rb]:
            raise TraceError(f'internal: uniting groups of widths {self.width[ra]} and {self.width[rb]}')
        keep, drop = min(ra, rb), max(ra, rb)
        self.parent[drop] = keep
        self.fixed[keep] = self.fixed[keep] or self.fixed[drop]

    def refine(self, gid: int, factor: int) -> bool:
        """Make each entry of group ``gid`` cover ``factor`` of its present entries (False if its width does not
        divide): every segment naming it gets ``per * factor``."""
        root = self.find(gid)
        if factor == 1:
            return True
        if self.width[root] % factor:
            return False
        self.width[root] //= factor
        for s in self.segments:
            if self.find(s.gid) == root:
                s.per *= factor
        return True

    def unite_spaces(self, a, b) -> bool:
        """Make two spaces of equal channels one, segment by segment (False where their segments don't align)."""
        if len(a) != len(b):
            return False
        for sa, sb in zip(a, b):
            ca, cb = self.width[self.find(sa.gid)] * sa.per, self.width[self.find(sb.gid)] * sb.per
            if ca != cb:
                return False
            if sa.per != sb.per:
                small, big = (sa, sb) if sa.per < sb.per else (sb, sa)
                if big.per % small.per or not self.refine(small.gid, big.per // small.per):
                    return False
            self.union(sa.gid, sb.gid)
        return True

    def fix(self, spaces, why: str) -> None:
        groups = sorted({self.find(s.gid) for space in spaces for s in space})
        prunable = [g for g in groups if not self.fixed[g]]
        for g in groups:
            self.fixed[g] = True
        if prunable:
            self.reasons.append((why, prunable))
