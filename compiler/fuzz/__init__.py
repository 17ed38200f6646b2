"""flowc.fuzz: a differential fuzzer of a native target (`cpu`, or `gpu`) against `reference`.

Random graphs over symbolic shapes (generate.py) are built through the public
front end (build.py), run on both targets with the same feeds, and compared
(compare.py) in worker processes that may crash or hang (runner.py, worker.py);
failures are shrunk (minimize.py) and printed as standalone scripts
(reproducer.py). `python -m flowc.fuzz --graphs N` runs a campaign.
"""
