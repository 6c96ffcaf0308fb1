"""Zoo tier: training configs (:mod:`.config`), the trainers (:mod:`.trainers`), the checkpoint store
(:mod:`.store`) and recipes of related configs (:mod:`.recipes`). Imports only :mod:`lmc_utils.core`."""

from .config import (INPUT_SHAPES, OPTIMIZERS, SCHEDULES, TRAINERS, ZOO_VERSION, TrainConfig, Trained, describe,
                     group_key)
from .recipes import independent_pairs, retrain_config, spawn, spawned_pairs, with_width
from .store import (checkpoint_path, code_digest, entry_lock, environment, get, get_many, record_requests,
                    recording, rekey, stop_recording, train, train_each, train_many)
from .trainers import MAX_GROUP, PASS_BYTES, build_model, lr_factor, models_per_pass

__all__ = ["INPUT_SHAPES", "MAX_GROUP", "OPTIMIZERS", "PASS_BYTES", "SCHEDULES", "TRAINERS", "ZOO_VERSION",
           "TrainConfig", "Trained", "build_model", "checkpoint_path", "code_digest", "describe", "entry_lock",
           "environment", "get", "get_many", "group_key", "independent_pairs", "lr_factor", "models_per_pass", "record_requests", "recording", "rekey",
           "retrain_config", "spawn", "spawned_pairs", "stop_recording", "train", "train_each", "train_many",
           "with_width"]
