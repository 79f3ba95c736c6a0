"""The ``drift-pipeline`` command the wheel installs: the binary's command line, run in-process."""

import sys

from drift_pipeline import _native


def main() -> None:
    """Runs the command line on ``sys.argv`` and exits with its code."""
    sys.exit(_native.cli_main(sys.argv))


if __name__ == "__main__":
    main()
