"""The fit's map/merge on a Dask cluster, for populations that outgrow one machine.

    pip install "edge-omd[fleet]"            # dask + distributed
    from dask.distributed import Client
    from edge_omd.population.dask import DaskDriver
    with Client("tcp://scheduler:8786") as client:
        pack = fit_population(shards, d=384, driver=DaskDriver(client), pack_id="acme-v2")

`DaskDriver` runs each pass of fit_population (edge_omd/population/fit.py) as one Dask task per
shard: the shards are sent to the workers once and stay there (`client.scatter`), the pass's
plan is broadcast once, every worker runs the same `map_shard` as the local driver, and the
partial sums come back to be merged by the same exact `merge`. Because the merge is exact
(fixed point, edge_omd/population/sums.py), the pack has the same bytes as a fit in one process,
however Dask places and orders the tasks. A shard must pickle (ArrayShard, FeatureCacheShard
over a folder every worker can read, or a generator of users that pickles as its arguments).
"""
from __future__ import annotations

from edge_omd.errors import ConfigError
from edge_omd.population.fit import Plan, map_shard, merge

__all__ = ["DaskDriver"]


class DaskDriver:
    """fit_population's driver on a `dask.distributed.Client` (module docstring)."""

    def __init__(self, client):
        try:
            from distributed import Client
        except ImportError as exc:   # the optional extra is not installed
            raise ConfigError("the Dask driver needs dask.distributed: pip install "
                              "'edge-omd[fleet]'") from exc
        if not isinstance(client, Client):
            raise ConfigError(f"DaskDriver needs a dask.distributed.Client, got "
                              f"{type(client).__name__}")
        self.client = client
        self._shards = None          # the scattered shards' futures (sent once)
        self._sent_for = None        # the shard list they came from

    def run(self, plan: Plan, shards) -> dict:
        if self._sent_for is not shards:
            self._shards = self.client.scatter(list(shards), hash=False)
            self._sent_for = shards
        # hash=False: a fresh key per pass (the fit changes one Plan object between passes)
        sent_plan = self.client.scatter(plan, broadcast=True, hash=False)
        parts = self.client.gather(self.client.map(map_shard, self._shards, plan=sent_plan,
                                                   pure=False))
        out = parts[0]
        for p in parts[1:]:
            out = merge(out, p)
        return out

    def close(self) -> None:
        """Release the scattered shards (the client stays open: it is the caller's)."""
        self._shards = self._sent_for = None
