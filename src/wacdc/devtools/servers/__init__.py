"""Private database servers for tests, `wacdc demo` and the benchmarks, one module per
server; `wacdc.devtools.embedded` gathers their public names."""
