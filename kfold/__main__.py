from kfold.commands.main import main

raise SystemExit(main())
