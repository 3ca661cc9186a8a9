import sys

from search.export._cli import main

sys.exit(main())
