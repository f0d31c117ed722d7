"""torchrun environment parsing and sharding (the multi-process runs are in test_train_ddp / test_eval_cli)."""

from __future__ import annotations

import pytest
import torch

from vidinvert import distributed as D
from vidinvert.errors import VidinvertError


def test_single_process_without_torchrun(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = D.context_from_env()
    assert (ctx.rank, ctx.world_size, ctx.distributed, ctx.is_main) == (0, 1, False, True)
    # every collective is the identity in one process
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(D.all_reduce_sum(t), torch.tensor([1.0, 2.0]))
    assert D.gather_to_main(ctx, {"a": 1}) == [{"a": 1}]
    assert D.broadcast_from_main("x") == "x"
    assert D.init_process_group(ctx, torch.device("cpu")) == ctx
    assert D.device_for(ctx, torch.device("cpu")) == torch.device("cpu")


def test_torchrun_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    ctx = D.context_from_env()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main, ctx.distributed) == (2, 4, 0, False, True)


@pytest.mark.parametrize("env, words", [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"),
    ({"WORLD_SIZE": "2", "RANK": "x"}, "RANK='x'"),
    ({"WORLD_SIZE": "2", "RANK": "5"}, "RANK 5 is outside 0..1"),
])
def test_bad_torchrun_environment_is_one_line(monkeypatch, env, words):
    monkeypatch.delenv("RANK", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(VidinvertError, match=words.replace("(", r"\(").replace(".", r"\.")) as e:
        D.context_from_env()
    assert "\n" not in str(e.value)


def test_shards_partition_the_items_in_order():
    items = list(range(11))
    shards = [D.shard(items, D.DistContext(r, 3)) for r in range(3)]
    assert sorted(x for s in shards for x in s) == items  # every item once
    assert [len(s) for s in shards] == [4, 4, 3]           # balanced
    assert all(s == sorted(s) for s in shards)
