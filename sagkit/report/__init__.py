"""Tables and comparisons built from finished runs: Tables 1-5 beside the paper's numbers (``reference``),
statistics over seeds, the kept ``results/`` folder and the controls study."""
