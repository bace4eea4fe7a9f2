"""`ferrocorn` console command and `python -m ferrocorn`."""

import sys


def main():
    from ferrocorn._ferrocorn import run

    sys.exit(run(sys.argv))


if __name__ == "__main__":
    main()
