from densevid.cli import main

raise SystemExit(main())
