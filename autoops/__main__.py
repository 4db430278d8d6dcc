"""``python -m autoops``: the ``autoops`` command (how a Ray job starts the controller)."""

from autoops.cli import main

if __name__ == "__main__":
    main()
