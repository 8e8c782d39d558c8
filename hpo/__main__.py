"""`python -m hpo` is the same as the `hpo` console script."""

from hpo.cli import main

if __name__ == "__main__":
    main()
