import sys

from search.launch._main import main

sys.exit(main())
