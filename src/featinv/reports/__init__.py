"""What a person reads: pages (HTML and Markdown) for runs, sweeps and studies, comparisons and
structure drawings. Reports read what :mod:`featinv.runs` and :mod:`featinv.experiments` wrote."""
