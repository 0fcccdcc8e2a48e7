import sys

from handoff.cli.main import main

sys.exit(main())
