from flagd.cli import main

raise SystemExit(main())
