from jobstore.cli.main import main

raise SystemExit(main())
