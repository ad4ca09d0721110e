from kfold.cli import main

raise SystemExit(main())
