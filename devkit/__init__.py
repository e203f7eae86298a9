"""What the tests, the demo (`hack/demo.py`) and the benchmarks (`bench/`) share to drive the product on the local
environment: its settings and `wait_for` (`testenv`), the operator as a process or a Helm release (`harness`,
`operator_release`), generated media (`mediagen`), pods' processes (`containers`) and the hostile-string corpus.

It imports nothing of `tests`, `hack` or `bench` (an import contract in pyproject.toml, checked by `make lint`),
so the demo and the benchmarks run without the test suite.
"""
