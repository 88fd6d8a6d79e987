"""The training seeds an experiment uses unless told otherwise: a torch-free module, so the CLI can show them."""

DEFAULT_SEEDS: tuple[int, ...] = (42, 43, 44, 45, 46)
