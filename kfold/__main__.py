import sys

try:  # Ctrl-C while the imports run: the same one line as later
    from kfold.commands.main import main
except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    sys.exit(130)

raise SystemExit(main())
