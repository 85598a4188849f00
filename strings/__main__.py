from strings.cli import main

raise SystemExit(main())
