"""`python -m tenfold` is the same as the `tenfold` command."""

from tenfold.cli import main

raise SystemExit(main())
