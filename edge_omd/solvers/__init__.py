"""Local-norm representations, one per module: exact, cg, sketch, diagonal.

Each solver owns a NamedTuple of fixed arrays (`state`) and offers the same small interface to
the RewardModel front: step (Algorithm 1, steps 1-2), absorb (step 4), theta / set_theta,
matvec (for the projection), widths, payload (for persistence), reset.
"""


class ExplicitTheta:
    """For solvers that store theta as such (all but exact, which stores U theta)."""

    def theta(self):
        return self.state.theta

    def set_theta(self, theta64):
        self.state.theta[:] = theta64

    # ---- step 3 (edge_omd/projection.py)
    def keep(self, ws):
        """Remember theta_t before step 2, for a rollback if the projection fails."""
        ws.prev[0, :] = self.state.theta

    def restore(self, ws):
        self.state.theta[:] = ws.prev[0]
