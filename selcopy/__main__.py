import sys

from selcopy.cli import main

sys.exit(main())
