"""`python -m vahana_worker`: the same as the `vahana-worker` console script."""

from vahana_worker import cli

if __name__ == "__main__":
    cli.main()
