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

Population packs travel the same path (`packs=`: the current pack first, bound to the current
head, then older packs users may have learned against). A new user, and a user who resets,
starts from the current pack on the current head. A stored user on the current head whose
record names an older pack (or none) is moved to the current pack when `personalizer` opens
them, once, in one store transaction (`Personalizer.migrate_pack`, edge_omd/population/
migrate.py: the prior swapped, the user's evidence kept). A user on an older head keeps both
their head and their pack until they reset, so a stored user changes head and pack once. A
record naming a pack the registry does not hold gets ConfigError naming its digest.

Heads are head objects (`FeatureHead`, `ArrayHead`, anything with `dim` and `fingerprint`) or
folders of exported heads: a folder's fingerprint is read from its manifest (cheap) and the
head is opened (`FeatureHead.open(folder, **open_options)`, which re-verifies it) on first use.
"""
from __future__ import annotations

import hmac
import os
from typing import Optional

from edge_omd.errors import ConfigError, HeadError, HeadMismatchError
from edge_omd.head.manifest import feature_dim, load_manifest

_PACK_OPTIONS = ("population", "prior")


class _Entry:
    def __init__(self, item, open_options: dict):
        if isinstance(item, (str, os.PathLike)):
            m = load_manifest(item)          # HeadError names a missing or corrupt folder
            self.folder, self.head = os.fspath(item), None
            self.fingerprint, self.dim = bytes.fromhex(m["fingerprint"]), feature_dim(m)
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

    def __init__(self, current, *older, packs=(), **open_options):
        self._entries = [_Entry(h, open_options) for h in (current,) + older]
        seen = set()
        for e in self._entries:
            if e.fingerprint in seen:
                raise ConfigError(f"two registered heads have the fingerprint "
                                  f"{e.fingerprint.hex()[:16]}...; register each head once")
            seen.add(e.fingerprint)
        self._packs = [_pack(p) for p in packs]
        if self._packs and self._packs[0].fingerprint != self._entries[0].fingerprint:
            raise ConfigError("the current pack (the first of packs=) must be fitted on the "
                              "current head (the first head): edge-omd population fit FEEDBACK "
                              "OUT --head HEAD")
        if len({p.digest for p in self._packs}) != len(self._packs):
            raise ConfigError("a pack is registered twice in packs=")

    @property
    def pack(self):
        """The current pack (new users and resets start from it), or None."""
        return self._packs[0] if self._packs else None

    def pack_for(self, digest: Optional[bytes]):
        """The registered pack with this digest (None: no pack); ConfigError when it is not
        registered."""
        if digest is None:
            return None
        for p in self._packs:
            if hmac.compare_digest(p.digest, bytes(digest)):
                return p
        raise ConfigError(f"the store record names the population pack {bytes(digest).hex()[:16]}"
                          "..., which is not registered: pass its file in HeadRegistry(..., "
                          "packs=[current, that one]) to move the user, or reset the user")

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
        """The user's Personalizer: on the head their state is bound to (`head_for`), with the
        current pack on the current head (a stored user naming another pack is moved to it
        first: `Personalizer.migrate_pack`), and with their own pack on an older head."""
        from edge_omd.personalizer import Personalizer
        _no_pack_option(options)
        head = self.head_for(store, user_id)
        rec = store.get(user_id)
        if not hmac.compare_digest(bytes(head.fingerprint), self._entries[0].fingerprint):
            pack = self.pack_for(rec.pack_digest) if rec is not None else None
            return Personalizer(head, store, user_id, population=pack, **options)
        p = Personalizer(head, store, user_id, population=self.pack, **options)
        now = None if self.pack is None else self.pack.digest
        if rec is not None and rec.pack_digest != now:
            p.migrate_pack(self.pack_for(rec.pack_digest))
        return p

    def reset(self, store, user_id: str, **options):
        """Forget the user's stored state (`store.delete`) and return a Personalizer on the
        current head with the current pack: the user starts again at the pack's start (theta =
        0 without one) in the new feature space."""
        from edge_omd.personalizer import Personalizer
        _no_pack_option(options)
        store.delete(user_id)
        return Personalizer(self.current, store, user_id, population=self.pack, **options)

    def move_users(self, store) -> list[str]:
        """Move every stored user on the current head to the current pack (`personalizer`
        does it for one user when it opens them); returns the ids moved."""
        now = None if self.pack is None else self.pack.digest
        moved = []
        for uid in store.users():
            rec = store.get(uid)
            if rec is None or rec.pack_digest == now or rec.head_fingerprint is None or \
                    bytes(rec.head_fingerprint) != self._entries[0].fingerprint:
                continue
            self.personalizer(store, uid)
            moved.append(uid)
        return moved

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


def _pack(p):
    """A Pack, or one read from a pack file's path."""
    from edge_omd.population.pack import Pack, load
    if isinstance(p, (str, os.PathLike)):
        return load(p)
    if not isinstance(p, Pack):
        raise ConfigError(f"packs= holds Packs or pack files, got {type(p).__name__}")
    return p


def _no_pack_option(options):
    if any(k in options for k in _PACK_OPTIONS):
        raise ConfigError("the registry gives each user their pack (HeadRegistry(..., packs=)); "
                          "do not pass population= or prior=")
