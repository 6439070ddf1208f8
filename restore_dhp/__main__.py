"""``python -m restore_dhp COMMAND ...``: the same as the ``restore-dhp`` command."""
import sys

from .cli import main

sys.exit(main())
