"""Old names kept for one release (docs/API.md, "Deprecated names").

Each old name does exactly what its new name does, after a DeprecationWarning that names the
new one. Every message starts with PREFIX, so the repository's own code can be held to the new
names (tests/conftest.py turns these warnings into errors; a test of an alias expects one).
"""
import warnings

#: The start of every deprecation message of the SDK.
PREFIX = "edge-omd deprecated:"


def warn(old: str, new: str, stacklevel: int = 3) -> None:
    """DeprecationWarning "`old` is deprecated ...: use `new`", attributed to the caller of the
    function that calls this one."""
    warnings.warn(f"{PREFIX} {old} is deprecated and goes in the next release: use {new}",
                  DeprecationWarning, stacklevel=stacklevel)


class _Unset:
    def __repr__(self):
        return "<required>"


#: the default of a required argument that may still come by its old keyword name
UNSET = _Unset()


def argument(where: str, new: str, value, old: str, old_kwargs: dict, default=UNSET):
    """The value of argument `new` of `where`, which a caller may still pass as `old=` (in
    `old_kwargs`, the call's other keyword arguments; warned). `default`: what `value` is when
    the caller did not pass it (UNSET: required). An unknown keyword, the value given under both
    names or a missing required one is the TypeError Python raises for a bad call."""
    extra = sorted(set(old_kwargs) - {old})
    if extra:
        raise TypeError(f"{where}() got an unexpected keyword argument {extra[0]!r}")
    if old in old_kwargs:
        if value is not default:
            raise TypeError(f"{where}() got {new!r} twice (as {new}= and its old name {old}=)")
        warn(f"{where}({old}=)", f"{where}({new}=)", stacklevel=4)
        return old_kwargs[old]
    if value is UNSET:
        raise TypeError(f"{where}() missing 1 required argument: {new!r}")
    return value


def method(cls_name: str, old: str, new: str, renames: dict = None, use: str = None):
    """A method `old` that warns, renames old keyword arguments ({old: new}) and calls `new`.
    use: what the warning tells the caller to do instead (default: call `new`)."""
    renames = dict(renames or {})
    also = "".join(f", {n}= for {o}=" for o, n in renames.items())
    use = use or f"{cls_name}.{new}{also}"

    def alias(self, *args, **kwargs):
        warn(f"{cls_name}.{old}", use)
        for o, n in renames.items():
            if o in kwargs:
                if n in kwargs:
                    raise TypeError(f"{cls_name}.{old}() got {n!r} twice (as {n}= and {o}=)")
                kwargs[n] = kwargs.pop(o)
        return getattr(self, new)(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated: use {use} (this does what `{new}` does)."
    return alias


def attribute(cls_name: str, old: str, new: str, use: str = None):
    """A read-only property `old` that warns and returns attribute `new`."""
    use = use or f"{cls_name}.{new}"

    def get(self):
        warn(f"{cls_name}.{old}", use)
        return getattr(self, new)

    get.__name__ = old
    return property(get, doc=f"Deprecated: use {use} (this returns `{new}`).")
