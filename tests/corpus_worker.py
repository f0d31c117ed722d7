"""One process of a corpus run on tiny models, for tests/test_corpus_procs.py (run as ``python -m tests.corpus_worker``).

``process_one`` reconstructs each input with the tiny encoder + generator on one CPU thread:
a photo through the image job, a clip frame by frame (resized to the generator's size, fixed
batches of 4) into one PNG strip of its reconstructed frames. The last line printed is a JSON
object with the run's counts; the exit code is run_corpus's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out_dir", type=Path)
    p.add_argument("sources", nargs="+")
    p.add_argument("--encoder", required=True)
    p.add_argument("--generator", required=True)
    p.add_argument("--shard", default=None)
    p.add_argument("--delay", type=float, default=0.0, help="sleep before each input (a slow rank)")
    p.add_argument("--delay-rank", type=int, default=None, help="only this torchrun RANK sleeps")
    a = p.parse_args()

    import numpy as np
    import torch

    from vidinvert.convert import to_tensor, to_uint8
    from vidinvert.device import resolve_compute
    from vidinvert.engine import Inverter
    from vidinvert.imagefile import write_image
    from vidinvert.inputs import is_photo
    from vidinvert.pipeline.corpus import parse_shard, plan_corpus
    from vidinvert.pipeline.corpus_run import run_corpus
    from vidinvert.pipeline.images import ImageJob, run_image_job
    from vidinvert.video import open_video

    torch.set_num_threads(1)
    inverter = Inverter.from_files(Path(a.encoder), Path(a.generator), resolve_compute("cpu", "fp32"))
    shard = parse_shard(a.shard)
    items = plan_corpus(a.sources, exclude=[a.out_dir])
    size = inverter.size

    slow = a.delay if a.delay_rank is None or os.environ.get("RANK") == str(a.delay_rank) else 0.0

    def process_one(item):
        if slow:
            time.sleep(slow)
        out = item.output_dir(a.out_dir) / f"{item.path.stem}.recon.png"
        if is_photo(item.path):
            run_image_job(inverter, ImageJob((item.path,), ((out,),), batch_size=4, overwrite=True))
            return {"outputs": [out], "frames": 1}
        strips = []
        with torch.no_grad():
            for batch in open_video(item.path).batches(4):
                x = to_tensor(batch.images.permute(0, 2, 3, 1))
                x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
                strips.extend(to_uint8(inverter.synthesize(inverter.invert(x))))
        write_image(out, np.concatenate(strips, axis=1), overwrite=True)
        return {"outputs": [out], "frames": len(strips), "identity_consistency": None}

    res = run_corpus(items, process_one, shard=shard, out_dir=a.out_dir, fingerprint="tiny-recon-v1",
                     poll_s=0.2, report_every_s=0.5, progress=print)
    print(json.dumps({"exit": res.exit_code, "processed": res.processed, "skipped": res.skipped,
                      "failed": res.failed, "kind": shard.kind, "merged": res.summary is not None}))
    return res.exit_code


if __name__ == "__main__":
    sys.exit(main())
