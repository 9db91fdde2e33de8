"""``python -m p2pkit``: the command line, as torchrun starts it (``torchrun -m p2pkit ...``)."""

from p2pkit.cli import main

if __name__ == "__main__":
    main()
