"""`python -m runtime.quickstart`."""

import sys

from runtime.quickstart.run import main

sys.exit(main())
