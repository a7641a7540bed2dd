import sys

from gadgetwatch.cli import main

sys.exit(main())
