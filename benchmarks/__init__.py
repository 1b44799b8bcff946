"""prunesearch's benchmarks: each measures one claim and prints its figures, run from the
repository root as `python -m benchmarks.NAME` (speed, gpu, search, networks, latency with its
sections cost, pruned, noise and deployed, schedules, reading). Every one takes `--smoke`: every
section on tiny generated data in seconds, which tests/test_benchmarks.py runs so that none
breaks unnoticed. Figures live in dated sections of docs/, each with the command that printed
it; `common` is what they share with each other and with the tests (one `Scale`, one
`measure`)."""
