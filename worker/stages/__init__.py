"""The stages, a module each, named after its stage: `run` over a chunk of article ids
(load, compute per article, store through `save`). A stage is its declaration in
newsflow.contract.PIPELINE plus its module here; the tasks are registered from both."""

from __future__ import annotations

from importlib import import_module

from newsflow.contract import STAGES
from worker.stages.base import ChunkResult, Runner, describe, fail_chunk

RUN: dict[str, Runner] = {stage: import_module(f"{__name__}.{stage}").run for stage in STAGES}

__all__ = ["RUN", "ChunkResult", "Runner", "describe", "fail_chunk"]
