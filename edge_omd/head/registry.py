"""Changing the head without leaving stored users behind: heads by fingerprint.

A reward-model state is bound to the fingerprint of the head it was learned on, so a new head
(another default pooling, a style block, a new model) would meet every stored user with
HeadMismatchError. The migration (README "Changing the head"):

1. keep the old head folder next to the new one (never export over it);
2. open both in a `HeadRegistry(current, old, ...)`: the first head serves new users, and
   `registry.head_for(store, user_id)` gives every stored user the head their state is bound
   to, so they keep their learned taste;
3. a user moves to the current head when they reset (`registry.reset(store, user_id)` or
   `Personalizer.reset()`): the state learned on the old head cannot be carried over (the
   journal holds feature-space observations, not texts, so nothing can be re-embedded);
4. once `registry.users_on(store)` shows nobody on an old head, drop its folder.

A user bound to a head the registry does not hold gets HeadMismatchError naming both
fingerprints and these steps: never a silent reset, never a silent wall.

Heads are head objects (`FeatureHead`, `ArrayHead`, anything with `dim` and `fingerprint`) or
folders of exported heads: a folder's fingerprint is read from its manifest (cheap) and the
head is opened (`FeatureHead.open(folder, **open_options)`, which re-verifies it) on first use.
"""
from __future__ import annotations

import hmac
import os
from typing import Optional

from edge_omd.errors import ConfigError, HeadError, HeadMismatchError
from edge_omd.head.manifest import load_manifest


class _Entry:
    def __init__(self, item, open_options: dict):
        if isinstance(item, (str, os.PathLike)):
            m = load_manifest(item)          # HeadError names a missing or corrupt folder
            self.folder, self.head = os.fspath(item), None
            self.fingerprint, self.dim = bytes.fromhex(m["fingerprint"]), int(m["d"])
        else:
            for attr in ("dim", "fingerprint", "features", "check"):
                if not hasattr(item, attr):
                    raise ConfigError(f"a registry head needs {attr!r} (the head protocol, "
                                      f"edge_omd/head/protocol.py); got {type(item).__name__}")
            fp = item.fingerprint
            if not isinstance(fp, (bytes, bytearray)) or len(fp) != 32:
                raise ConfigError("a registry head needs a 32-byte fingerprint")
            self.folder, self.head = None, item
            self.fingerprint, self.dim = bytes(fp), int(item.dim)
        self._open_options = open_options

    def get(self):
        if self.head is None:
            from edge_omd.head.runner import FeatureHead
            head = FeatureHead.open(self.folder, **self._open_options)
            if not hmac.compare_digest(head.fingerprint, self.fingerprint):
                raise HeadError(f"feature head {self.folder} changed while registered; "
                                "re-open the registry")
            self.head = head
        return self.head


class HeadRegistry:
    """The current head (first argument) and older heads kept for their users.

    `open_options`: keyword arguments of `FeatureHead.open` for heads given as folders.
    Raises ConfigError for a non-head or two heads with one fingerprint, HeadError for a folder
    that is not an exported head.
    """

    def __init__(self, current, *older, **open_options):
        self._entries = [_Entry(h, open_options) for h in (current,) + older]
        seen = set()
        for e in self._entries:
            if e.fingerprint in seen:
                raise ConfigError(f"two registered heads have the fingerprint "
                                  f"{e.fingerprint.hex()[:16]}...; register each head once")
            seen.add(e.fingerprint)

    @property
    def current(self):
        """The head new users (and users who reset) get."""
        return self._entries[0].get()

    @property
    def fingerprints(self) -> list[bytes]:
        """Registered fingerprints, the current head's first."""
        return [e.fingerprint for e in self._entries]

    def get(self, fingerprint: Optional[bytes]):
        """The registered head with this fingerprint (None: the current head), or None."""
        if fingerprint is None:
            return self.current
        for e in self._entries:
            if hmac.compare_digest(e.fingerprint, bytes(fingerprint)):
                return e.get()
        return None

    def head_for(self, store, user_id: str):
        """The head `user_id`'s stored state is bound to; the current head for a user without
        a record (or an unbound one). HeadMismatchError when that head is not registered."""
        rec = store.get(user_id)
        if rec is None or rec.head_fingerprint is None:
            return self.current
        head = self.get(rec.head_fingerprint)
        if head is None:
            raise HeadMismatchError(
                f"user {user_id!r}: the stored state was learned on feature head "
                f"{bytes(rec.head_fingerprint).hex()[:16]}..., which is not registered (current "
                f"head {self._entries[0].fingerprint.hex()[:16]}...); register that head's folder "
                "in the HeadRegistry to keep serving this user, or reset the user to move them "
                "to the current head (README 'Changing the head')")
        return head

    def personalizer(self, store, user_id: str, **options):
        """`Personalizer(self.head_for(store, user_id), store, user_id, **options)`."""
        from edge_omd.personalizer import Personalizer
        return Personalizer(self.head_for(store, user_id), store, user_id, **options)

    def reset(self, store, user_id: str, **options):
        """Forget the user's stored state (`store.delete`) and return a Personalizer on the
        current head: the user starts again at theta = 0 in the new feature space."""
        from edge_omd.personalizer import Personalizer
        store.delete(user_id)
        return Personalizer(self.current, store, user_id, **options)

    def users_on(self, store) -> dict[str, list[str]]:
        """{fingerprint hex (or "unregistered:<hex>" / "unbound"): [user ids]} over the store:
        who still needs an old head."""
        out: dict[str, list[str]] = {}
        known = {e.fingerprint for e in self._entries}
        for uid in store.users():
            rec = store.get(uid)
            if rec is None:
                continue
            fp = rec.head_fingerprint
            key = ("unbound" if fp is None else
                   bytes(fp).hex() if bytes(fp) in known else "unregistered:" + bytes(fp).hex())
            out.setdefault(key, []).append(uid)
        return out
