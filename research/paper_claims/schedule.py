"""What issue 30's run scripts read from a CPU recipe, and the name tag of a run's lr schedule.

    python -m research.paper_claims.schedule srresnet_x4_baseline_cpu                # freeze|total_iter|milestones|tag
    python -m research.paper_claims.schedule srresnet_x4_dhp60_cpu --milestones 600,1000,1200,1400

The DHP recipes' lr milestones are the reference: a run whose milestones differ from its task's DHP recipe's (its
own recipe's, or ``--milestones``) carries them in its name as ``m<milestones, - for ,>_``. So the SR baseline
recipe's runs, trained since part 1 with its own milestones, are told apart from the earlier ones trained with the
DHP recipes' (reports/paper_claims.md, part 1).
"""
from __future__ import annotations

import argparse
import re
import sys

from tools.recipes import recipe


def _train(name: str) -> dict:
    return recipe(name).options()['train']


def reference(name: str) -> str:
    """The DHP recipe of ``name``'s task: ``srresnet_x4_baseline_cpu`` -> ``srresnet_x4_dhp60_cpu``."""
    prefix = re.sub(r'_(baseline|dhp\d*)_cpu$', '', name)
    if prefix == name:
        raise SystemExit(f'{name}: not a CPU recipe name (<task>_baseline_cpu or <task>_dhpNN_cpu)')
    return f'{prefix}_dhp60_cpu'


def milestone_tag(name: str, milestones: list[int] | None = None) -> str:
    own = list(milestones if milestones is not None else _train(name)['scheduler']['milestones'])
    ref = list(_train(reference(name))['scheduler']['milestones'])
    return '' if own == ref else 'm' + '-'.join(map(str, own)) + '_'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('recipe', help='a CPU recipe (python -m tools.recipes list)')
    p.add_argument('--milestones', help='comma-separated lr milestones instead of the recipe\'s')
    args = p.parse_args(argv)
    train = _train(args.recipe)
    asked = [int(x) for x in args.milestones.split(',')] if args.milestones else None
    freeze = train.get('freeze_bn_iter')
    print('' if freeze is None else freeze, train['total_iter'], ','.join(map(str, train['scheduler']['milestones'])),
          milestone_tag(args.recipe, asked), sep='|')
    return 0


if __name__ == '__main__':
    sys.exit(main())
