"""Hypothesis strategies for what JSON carries through the envelope rule: every kind of
value, at the edges of the integers and floats the rule keeps exact."""

from __future__ import annotations

from hypothesis import strategies as st

from runtime.core.envelope import INT_MAX, INT_MIN

# Strings as JSON carries them: any code point but a lone surrogate (not UTF-8).
ANY_TEXT = st.characters(exclude_categories=("Cs",))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT_MIN, INT_MAX),
    st.sampled_from([INT_MIN, INT_MAX, 2**53 + 1, -0.0, 5e-324, 1.7976931348623157e308]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(ANY_TEXT, max_size=40),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(ANY_TEXT), inner, max_size=4)
    ),
    max_leaves=25,
)
