"""Source expressions of target rows (``param``, ``#N``, ``self``, attribute paths,
``|type`` / ``|samples``, `` or ``) on random calls, against an evaluation written
here from the documented rules."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from opentelemetry_instrumentation_spikeformer.core.targets import Source

NAMES = ("model", "net", "cfg", "dataset", "target", "timesteps")
MISSING = object()


class Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


class Unsized:
    """len() raises TypeError although the class defines __len__."""

    def __len__(self):
        raise TypeError("no length")


leaves = st.one_of(
    st.none(), st.integers(-5, 50), st.text("ab", max_size=3), st.booleans(),
    st.lists(st.integers(), max_size=4), st.builds(Sized, st.integers(0, 9)), st.just(Unsized()),
)
values = st.recursive(
    leaves,
    lambda inner: st.dictionaries(st.sampled_from(NAMES), inner, max_size=4).map(
        lambda d: SimpleNamespace(**d)),
    max_leaves=12,
)
heads = st.one_of(st.sampled_from(NAMES), st.just("self"), st.integers(0, 3).map(lambda i: f"#{i}"))
alternatives = st.tuples(heads, st.lists(st.sampled_from(NAMES), max_size=3),
                         st.sampled_from(("", "type", "samples")))
expressions = st.lists(alternatives, max_size=4)


def text_of(expression, spaces) -> str:
    parts = []
    for (head, path, flt), pad in zip(expression, spaces):
        part = ".".join([head, *path]) + (f"|{flt}" if flt else "")
        parts.append(" " * pad + part + " " * pad)
    return " or ".join(parts)


def samples(value):
    dataset = getattr(value, "dataset", None)
    for candidate in (dataset, value):
        if candidate is None:
            continue
        try:
            return len(candidate)
        except TypeError:
            continue
    return None


def resolve(head, path, bound, args, instance):
    """What one alternative names in the call, or MISSING (None counts as missing)."""
    roots = {**bound, **{f"#{i}": arg for i, arg in enumerate(args)}, "self": instance}
    value = roots.get(head, MISSING)
    for attr in path:
        if value is MISSING or value is None:
            return MISSING
        value = getattr(value, attr, MISSING)
    return MISSING if value is None else value


FILTERS = {"": lambda value: value, "type": lambda value: type(value).__name__, "samples": samples}


def evaluate(expression, bound, args, instance):
    """The first alternative whose value exists and is not None, through its filter."""
    present = [(value, flt) for head, path, flt in expression
               if (value := resolve(head, path, bound, args, instance)) is not MISSING]
    if not present:
        return None
    value, flt = present[0]
    return FILTERS[flt](value)


@given(expression=expressions, spaces=st.lists(st.integers(0, 2), min_size=4, max_size=4),
       bound=st.dictionaries(st.sampled_from(NAMES), values, max_size=4),
       args=st.lists(values, max_size=3).map(tuple), instance=values)
def test_read_matches_the_documented_rules(expression, spaces, bound, args, instance):
    got = Source.parse(text_of(expression, spaces)).read(bound, args, instance)
    want = evaluate(expression, bound, args, instance)
    if want is None or isinstance(want, (int, str)):
        assert type(got) is type(want) and got == want
    else:
        assert got is want  # the call's own object, not a copy


@given(expression=expressions)
def test_parse_keeps_every_alternative_in_order(expression):
    parsed = Source.parse(text_of(expression, [1, 0, 2, 1]))
    assert parsed.alternatives == tuple((h, tuple(p), f) for h, p, f in expression)


def test_examples():
    class Loader:
        dataset = list(range(7))

    assert Source.parse("loader|samples or #1|samples").read({"loader": Loader()}, (), None) == 7
    assert Source.parse("loader|samples or #1|samples").read({}, ("x", [1, 2, 3]), None) == 3
    config = SimpleNamespace(timesteps=16)
    assert Source.parse("self.config.timesteps").read({}, (), SimpleNamespace(config=config)) == 16
    assert Source.parse("self.recipe|type").read({}, (), SimpleNamespace(recipe=Loader())) == "Loader"
    assert Source.parse("missing or #5").read({}, (), None) is None
    assert Source.parse("model or #0").read({"model": None}, ("first",), None) == "first"
    assert Source.parse("x|samples").read({"x": Unsized()}, (), None) is None
    loader = type("Loader", (), {"dataset": Unsized(), "__len__": lambda s: 4})()
    assert Source.parse("x|samples").read({"x": loader}, (), None) == 4  # its own length
    assert Source.parse("").alternatives == ()
