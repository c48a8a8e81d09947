"""The population pack (issue 19): a new user starts from what the population knows.

    pack.py    the artefact: Pack (theta_pop, the deviation directions, the scales), its file
               format (EOMDPOP1), digest and start; old prior files load as packs
    data.py    one user's feedback as the fit reads it (UserData) and the shards it reads from
    sums.py    sums that merge exactly (fixed point), so sharded fits give the same bytes
    fit.py     fit_population: passes of map (per user) and merge (exact), the held-out choice
    dask.py    the same map/merge on a Dask cluster (the optional `dask` extra)
"""
from edge_omd.population.pack import Pack, load, save

__all__ = ["Pack", "load", "save", "fit_population"]


def __getattr__(name):
    # the fit imports the RewardModel (its held-out criterion replays the SDK's learner);
    # loading a pack does not
    if name == "fit_population":
        from edge_omd.population.fit import fit_population
        return fit_population
    raise AttributeError(f"module 'edge_omd.population' has no attribute {name!r}")
