"""One panel per file; MainWindow only wires them together."""
