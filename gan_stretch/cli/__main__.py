import sys

from gan_stretch.cli.main import main

sys.exit(main())
