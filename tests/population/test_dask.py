"""fit_population on a Dask cluster (issue 19, item 5): a LocalCluster of 2 worker processes
runs the same map/merge and gives the same pack bytes as one process. dask.distributed is in
the `fleet` extra, which requirements.lock installs for the suite (no skip)."""
import numpy as np
from distributed import Client, LocalCluster

from edge_omd.errors import ConfigError
from edge_omd.population.dask import DaskDriver
from edge_omd.population.data import ArrayShard
from edge_omd.population.fit import fit_population
from tests.population.test_fit import D, SMALL, _population

import pytest


def test_a_dask_fit_on_two_workers_gives_the_one_process_bytes():
    users, _, _ = _population(n=50)
    one = fit_population([ArrayShard(users)], d=D, settings=SMALL, pack_id="t")
    order = np.random.default_rng(5).permutation(len(users))
    shards = [ArrayShard([users[i] for i in order[j::3]]) for j in range(3)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        pack = fit_population(shards, d=D, settings=SMALL, pack_id="t",
                              driver=DaskDriver(client))
    assert pack.to_bytes() == one.to_bytes()


def test_the_driver_needs_a_client():
    with pytest.raises(ConfigError, match="Client"):
        DaskDriver("tcp://localhost:8786")
