from darkpose.cli import main

raise SystemExit(main())
