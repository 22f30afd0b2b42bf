import sys

from planetscale_emulator import main

sys.exit(main())
