"""``python -m mechscope`` (and ``torchrun -m mechscope …``) runs the command line."""

import sys

from mechscope.cli import main

sys.exit(main())
