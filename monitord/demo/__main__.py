"""``python -m monitord.demo``: the demo with the options of ``monitord demo``."""

from monitord.demo.office import main

raise SystemExit(main())
