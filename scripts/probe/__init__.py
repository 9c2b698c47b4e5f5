"""`ctxbench probe` in the suite's index of commands; the probe itself is the installed package, ctxbench/probing/."""
