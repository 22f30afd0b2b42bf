import sys

from engines.planetscale.emulator import main

sys.exit(main())
