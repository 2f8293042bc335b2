"""The ``fwgen`` command line (`fwgen.cli.app`)."""

import gc

# A command is a short process that makes hundreds of thousands of objects as it imports
# its libraries, nearly all of them kept to the end: looking for reference cycles every
# 700 new objects (the interpreter's default) walks that growing heap again and again and
# frees next to nothing. Look every 100,000 (`fwgen.cli.app.main` skips the last look, at
# the exit, too).
gc.set_threshold(100_000, 20, 10)
