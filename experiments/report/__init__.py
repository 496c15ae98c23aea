"""The experiments' report (``python -m experiments.report``): statistics from ``heads.stats``, cells and tables
(``tables``), the two plots (``plots``), the learning-curve sections (``curve``), the other sections
(``sections``), the whole document (``document``) and the command line (``__main__``)."""
