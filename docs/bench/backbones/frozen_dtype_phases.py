"""RSS by phase of one sd21-flowmapsr step on the random real-size folder: anonymous memory
(tensors) apart from file-backed pages (the mmap'ed safetensors)."""

import json
import os
import sys
import time

from flowmapsr.training.presets import resolve_config
from flowmapsr.training.trainer import Trainer


def rss():
    d = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "RssAnon", "RssFile", "VmHWM")):
            k, v = line.split(":")
            d[k] = round(int(v.split()[0]) / 1024**2, 2)
    return d


F = os.environ.get("F", "/tmp/sd21-random")
OUT = os.environ.get("OUT", "/tmp/frozen-dtype")
dt = sys.argv[1]
ov = [
    f"net.pretrained={F}",
    f"codec.pretrained={F}",
    f"output_dir={OUT}/ph-{dt}",
    f"frozen_dtype={dt}",
    "max_steps=1",
    "data.kind=synthetic",
    "data.roots=[]",
    "data.degradation=bicubic",
    "data.crop_size=256",
    "data.batch_size=1",
    "data.scales=[4]",
    "data.synthetic_count=4",
    "codec.tile=null",
    "validation.hr_dir=''",
    "validation.lr_dir=''",
    "validation.count=1",
    "validation.crop=64",
    "validation.steps=[1]",
    "checkpoint.every=0",
    "progress=none",
    "tensorboard=false",
    "resume=none",
]
out = {"frozen_dtype": dt}
t = Trainer(resolve_config("sd21-flowmapsr", ov))
out["after_build_GiB"] = rss()
t0 = time.process_time()
t.train_step()
out["step_cpu_s"] = round(time.process_time() - t0, 1)
out["after_step_GiB"] = rss()
print(json.dumps(out))
