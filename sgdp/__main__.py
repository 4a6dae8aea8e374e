import sys

from sgdp.cli import main

sys.exit(main())
