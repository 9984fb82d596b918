import sys

from leadingterms.cli import main

sys.exit(main())
