"""The code-competition notebook's load: the whole competition (what training loads) against its test images alone
(what ``kfold.flows.offline.predict_offline`` loads), n=3 alternating, each with a fresh decode cache.

    python benchmarks/offline_test_only.py COMPETITION_DIR CHANNELS   # CHANNELS: the models' (1 gray, 3 RGB)
"""
import os, sys, tempfile, time, statistics, json
from kfold.data.jobs import TaskSpec
from kfold.flows.offline import competition_task
comp = sys.argv[1]
res = {"whole": [], "test_only": []}
for i in range(3):
    for kind in ("whole", "test_only"):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["KFOLD_CACHE"] = cache
            t = time.perf_counter()
            task = TaskSpec(comp).load() if kind == "whole" else competition_task(comp, {"load_options": {}, "input": {"channels": int(sys.argv[2])}}, test_only=True)
            res[kind].append(time.perf_counter() - t)
            shape = (task.train_images.shape, task.test_images.shape)
    print(i, {k: round(v[-1], 2) for k, v in res.items()}, flush=True)
med = {k: statistics.median(v) for k, v in res.items()}
print("medians", {k: round(v, 2) for k, v in med.items()}, "ratio", round(med["whole"] / med["test_only"], 2))
