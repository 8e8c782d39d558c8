"""The search: the space (`space`, `space_file`, `warm_start`), one trial across both stores
(`trial`), the session a search call opens and closes (`session`, `parent_run`), the trial loop of
one process (`loop`) or of `--jobs` workers (`workers`), `hpo search` as one call (`run`),
trials of dead processes (`recovery`), and `hpo train`, one configuration outside any study
(`train`).

May import: the package root, `hpo.core` and `hpo.stores`."""
