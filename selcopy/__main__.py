import sys

from selcopy.cli import main

if __name__ == "__main__":
    sys.exit(main())
