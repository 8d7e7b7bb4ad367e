"""`python -m brushwork` is the `brushwork` command."""

import sys

from brushwork.cli import main

sys.exit(main())
