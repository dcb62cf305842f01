"""``edgeport run``: one candidate through every stage into one run folder, with its build record,
its manifest, and the steps only a run takes (student choice, distillation gain, every runtime)."""
