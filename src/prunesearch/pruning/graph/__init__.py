"""The network as a graph, through torch-pruning's dependency graph (the only place that
imports torch_pruning): which layers' channels are one (couplings), what dies with a channel,
networks traced whole or in parts. Structured methods, costs and export build on it."""
