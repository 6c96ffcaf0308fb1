"""Held-out check (2026-12-02): notebook 10's deep-MLP rung (cpu params) with both weight-matching solvers;
prints each claim's estimate, interval and verdict side by side. Results: README, regime ladder section."""
import time

import pandas as pd
import torch

torch.set_num_threads(2)
from lmc_utils import profiles, verdicts
from lmc_utils.studies import regime_ladder as L
P = profiles.resolve("10_regime_ladder", "cpu")
ladder = [r for r in L.rungs(P.rungs) if r.name == "mlp_plain"]
crit = verdicts.load_criteria("10_regime_ladder")
out = {}
for matcher in ("iterative", "sinkhorn"):
    t0 = time.time()
    res = L.run(ladder, P.n_pairs, n_triples=P.n_triples, spawned_pairs=P.spawned_pairs, n_orders=P.n_orders,
                parent_epochs=P.parent_epochs, loss_subset=P.loss_subset, match_samples=P.match_samples,
                eval_subset=P.eval_subset, ste=P.ste, judge_sparsity=P.judge_sparsity, device="cpu", progress=False,
                matcher=matcher, sinkhorn=P.sinkhorn)
    print(matcher, f"{time.time()-t0:.0f} s", flush=True)
    judged = {c for c in crit if c not in ("matching_needed", "renorm_beats_none", "renorm_recovers_pruning_loss",
                                             "rescale_beats_repair", "variance_collapse")}
    tab = L.verdicts(res, {c: crit[c] for c in judged})  # the rung runs no renormalisation or pruning study
    out[matcher] = tab.set_index(["claim", "subject"])[["estimate", "ci_low", "ci_high", "verdict"]]
    tm = res.results["three_models"][0]
    print(tm.merged.groupby("method")["accuracy"].mean().round(4).to_dict())
    print(tm.barriers.groupby(["method", "pair"])["loss_barrier"].mean().round(3).to_dict())
j = out["iterative"].join(out["sinkhorn"], lsuffix="_it", rsuffix="_sk")
pd.set_option("display.width", 250)
print(j.to_string())
