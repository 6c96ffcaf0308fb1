"""The studies tier: one measurement protocol per notebook.

Each module trains or loads its models through :mod:`lmc_utils.zoo`, measures with the
algorithm modules and returns data (a result of tidy DataFrames, summary tables, verdict rows);
it draws no figure and writes no prose. Modules: ``rebasin_basics`` (00), ``distance_taylor`` (01),
``singular_vectors`` (02), ``three_models`` (03), ``renormalisation`` (04), ``pruning`` (05),
``swa`` (06), ``same_basin`` and ``implicit_bias`` (07), ``merge_many`` (08), ``width_clusters`` (09),
``regime_ladder`` (10: notebooks 01–05's studies on the regime ladder), ``imagenet_resnet50`` (the
ImageNet sections of 02 and 05); ``quality`` records the test accuracy of the models each study judges
(:mod:`lmc_utils.claims.quality`).
"""
