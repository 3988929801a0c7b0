from jobstore.cli import main

raise SystemExit(main())
